from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class GenerationConfig(AppConfig):
    name = "generation"
    verbose_name = "Benchmarks, models and videos"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        if not settings.EVALSITE_GENERATION_BACKENDS:
            return  # the backends (and torch) load when a run needs them, not with every process
        from .backends import register

        for entry in settings.EVALSITE_GENERATION_BACKENDS:
            name, _, target = entry.partition("=")
            if not name.strip() or ":" not in target:
                raise ImproperlyConfigured(
                    f"EVALSITE_GENERATION_BACKENDS: {entry!r} is not name=module:Class"
                )
            register(name.strip(), target.strip())
