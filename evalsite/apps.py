from django.apps import AppConfig


class EvalsiteConfig(AppConfig):
    name = "evalsite"
    verbose_name = "Site and jobs"
    default_auto_field = "django.db.models.BigAutoField"
