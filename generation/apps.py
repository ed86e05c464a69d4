from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    verbose_name = "Benchmarks, models and videos"
    default_auto_field = "django.db.models.BigAutoField"
