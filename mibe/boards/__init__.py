"""Boards: run folders (and the paper's published rows) -> leaderboard model -> table, markdown, CSV,
HTML and plots; `mibe compare`."""
