from django.urls import path

from . import views

urlpatterns = [
    path("", views.metrics_home, name="metrics-home"),
    path("vae/", views.vae_evaluation_list, name="vae-evaluation-list"),
    path("vae/<int:pk>/", views.vae_evaluation_detail, name="vae-evaluation-detail"),
    path("scores/", views.auto_scores, name="auto-scores"),
]
