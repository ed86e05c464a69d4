from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("benchmarks", api.BenchmarkViewSet, basename="benchmark")
router.register("prompts", api.PromptViewSet, basename="prompt")
router.register("models", api.VideoModelViewSet, basename="videomodel")
router.register("videos", api.VideoViewSet, basename="video")
router.register("refusals", api.RefusalViewSet, basename="refusal")
router.register("generation-runs", api.GenerationRunViewSet, basename="generationrun")
urlpatterns = router.urls
