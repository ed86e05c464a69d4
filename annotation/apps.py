from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = "Campaigns, assignments and judgments"
    default_auto_field = "django.db.models.BigAutoField"
