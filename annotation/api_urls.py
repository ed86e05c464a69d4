from .api import annotate, manage

urlpatterns = [*annotate.urlpatterns, *manage.urlpatterns]
