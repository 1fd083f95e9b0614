"""What a study leaves: tables (trials, Pareto front), plots, report.html, the selected model exported."""
