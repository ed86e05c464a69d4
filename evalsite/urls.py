from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny

from . import views

api_patterns = [
    path("", include("evalsite.api_urls")),
    path("", include("generation.api_urls")),
    path("", include("annotation.api_urls")),
    path("", include("preference.api_urls")),
    path("", include("metrics.human.api_urls")),
    path("", include("metrics.automatic.api_urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/<uuid:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<uuid:job_id>/<str:action>/", views.job_action, name="job-action"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/invite/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="registration/invite.html", success_url="/accounts/login/", post_reset_login=False
        ),
        name="invite",
    ),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="api-schema"),
    path("api/", include(api_patterns)),
    path("metrics/", include("metrics.human.urls")),
    path("metrics/", include("metrics.automatic.urls")),
    path("campaigns/", include("annotation.urls")),
    path("preference/", include("preference.urls")),
    path("", include("generation.urls")),
]
