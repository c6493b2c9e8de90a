"""The scoring wing: the answer-kind registry (kinds.py), the parsers, metrics, and the statistics
(bootstrap intervals, paired tests) every number mibe reports is computed with."""
