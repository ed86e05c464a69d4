"""Roles. Managers are staff users; annotators are every other active user. Annotators see only their
own work: every page and API endpoint that shows results, judgments or model identities is for managers."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission


def is_manager(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class IsManager(BasePermission):
    message = "This endpoint is for managers (staff accounts)."

    def has_permission(self, request, view) -> bool:
        return is_manager(request.user)


def manager_required(view):
    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not is_manager(request.user):
            raise PermissionDenied("This page is for managers.")
        return view(request, *args, **kwargs)

    return wrapped
