"""The run folder: the only code that writes or reads run.json, results.json and samples/ (resume,
locks, redaction, rescore, audit and imports of other harnesses go through it)."""
