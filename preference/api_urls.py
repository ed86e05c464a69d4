from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("preference-exports", api.PreferenceExportViewSet, basename="preference-export")
router.register("training-runs", api.TrainingRunViewSet, basename="api-training-run")
urlpatterns = router.urls
