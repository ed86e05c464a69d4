from .views import annotate, manage

# Each view module declares its own routes, next to the views they name.
urlpatterns = [*annotate.urlpatterns, *manage.urlpatterns]
