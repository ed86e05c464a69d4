"""Human-evaluation numbers: a campaign's report tables (Metric-1 Win/Tie/Loss, Metric-2 rubric scores, A/B
shares, agreement and position bias in `agreement.py`), the leaderboard and their downloads. Computed from
the annotation app's judgments, under its rules of who won (`annotation.outcomes`) and which judgments count
(`annotation.left_out`), with the pure statistics in `metrics.stats`."""
