from django.apps import AppConfig


class PreferenceConfig(AppConfig):
    name = "preference"
    verbose_name = "Preference pairs and DPO exports"
    default_auto_field = "django.db.models.BigAutoField"
