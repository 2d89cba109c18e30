"""Where findings go: the terminal summary and failure text, the JSON report, GitHub
annotations, and baselines."""
