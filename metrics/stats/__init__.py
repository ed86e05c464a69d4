"""Statistics of human evaluations, as plain functions on numbers and arrays (no Django, ever).

- `pairwise`: win-tie-loss counts, the sign test, prompt-level bootstrap intervals, majority votes.
- `scores`: paired rubric scores (Wilcoxon signed-rank test) and score summaries.
- `preference_share`: A/B preference shares with "no preference" as half a point each (Step-Video's DPO table).
- `agreement`: Krippendorff's alpha, Fleiss' kappa, pairwise annotator agreement, position bias.
- `ratings`: the Bradley-Terry leaderboard, with bootstrap intervals and interval-respecting ranks.

Every random function takes `seed: int` and draws from its own `numpy.random.default_rng(seed)`.
"""
