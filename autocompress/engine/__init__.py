"""The search engine: an Optuna multi-objective study over recipes, its trials run as Ray tasks.

api.py (one call), config.py (what to do), study.py (the only state), driver.py (ask/tell), executor.py (Ray),
worker.py (one trial), budget.py, progress.py. Outputs are drawn by autocompress.report.
"""
