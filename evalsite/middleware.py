"""The UI language chosen per user. It is stored in `UserSettings`, so it follows the person from browser
to browser; `UserLanguageMiddleware` activates it on every request once the user is known (it sits after
AuthenticationMiddleware). Users who never chose keep Django's usual choice (cookie, then browser)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from .models import UserSettings


class LanguageError(ValueError):
    """An unknown language code; the message is for the person who sent it."""


def supported_languages() -> list[str]:
    return [code for code, _ in settings.LANGUAGES]


def save_user_language(user: AbstractBaseUser, language: str) -> str:
    """Store `language` (one of settings.LANGUAGES) as `user`'s UI language and return it."""
    language = (language or "").strip().lower()
    if language not in supported_languages():
        raise LanguageError(
            f"Unknown language {language!r}; choose one of: {', '.join(supported_languages())}."
        )
    UserSettings.objects.update_or_create(user=user, defaults={"language": language})
    return language


def stored_language(user: AbstractBaseUser) -> str | None:
    """The user's stored UI language, or None when they have not chosen one (or it is no longer offered)."""
    if UserSettingsBackend.loaded_with_settings(user):
        site_settings = getattr(user, "site_settings", None)
        language = site_settings.language if site_settings is not None else None
    else:
        language = UserSettings.objects.filter(user=user).values_list("language", flat=True).first()
    return language if language in supported_languages() else None


class UserSettingsBackend(ModelBackend):
    """Django's ModelBackend, except that the signed-in user of each request is read together with their
    settings (one query, not two: every request, media included, needs the UI language)."""

    def get_user(self, user_id):
        user = get_user_model()._default_manager.select_related("site_settings").filter(pk=user_id).first()
        return user if user is not None and self.user_can_authenticate(user) else None

    @staticmethod
    def loaded_with_settings(user: AbstractBaseUser) -> bool:
        """Whether `user.site_settings` is already read (or known to be missing) with the user."""
        return user._meta.get_field("site_settings").is_cached(user)


class UserLanguageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            language = stored_language(user)
            if language:
                translation.activate(language)
                request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)
