from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("preference-exports", api.PreferenceExportViewSet, basename="preference-export")
urlpatterns = router.urls
