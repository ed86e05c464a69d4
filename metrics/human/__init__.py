"""Human-evaluation numbers: a campaign's report tables (Metric-1 Win/Tie/Loss, Metric-2 rubric scores, A/B
shares, agreement, position bias), the leaderboard, their downloads, and the rules that leave judgments
out. Computed from the annotation app's judgments with the pure statistics in `metrics.stats`."""
