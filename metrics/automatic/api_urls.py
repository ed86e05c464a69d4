from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("vae-evaluations", api.VaeEvaluationViewSet, basename="vae-evaluation")
router.register("auto-scores", api.AutoScoreViewSet, basename="auto-score")
router.register("auto-score-runs", api.AutoScoreRunViewSet, basename="auto-score-run")
urlpatterns = router.urls
