"""The metrics app's models, for Django: every one of them is an automatic video metric's and is defined in
`metrics.automatic.models` (the human-evaluation numbers are computed from the annotation app's judgments
and store nothing of their own)."""

from metrics.automatic.models import (
    AutoScore,
    AutoScoreRun,
    ScoreSettings,
    VaeEvaluation,
    VaeEvaluationVideo,
)

__all__ = ["AutoScore", "AutoScoreRun", "ScoreSettings", "VaeEvaluation", "VaeEvaluationVideo"]
