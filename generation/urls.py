from django.urls import path

from . import views

urlpatterns = [
    path("benchmarks/", views.benchmark_list, name="benchmark-list"),
    path("benchmarks/<slug:slug>/", views.benchmark_detail, name="benchmark-detail"),
    path("benchmarks/<slug:slug>/prompts/<int:position>/", views.prompt_detail, name="prompt-detail"),
    path("models/", views.model_list, name="model-list"),
    path("models/<int:pk>/", views.model_detail, name="model-detail"),
    path("generation/runs/", views.run_list, name="run-list"),
    path("generation/runs/new/", views.run_new, name="run-new"),
    path("generation/runs/<int:pk>/", views.run_detail, name="run-detail"),
    path("generation/runs/<int:pk>/<str:action>/", views.run_action, name="run-action"),
    path("videos/", views.video_list, name="video-list"),
    path("videos/import/", views.import_videos, name="video-import"),
    path("videos/import/<uuid:job_id>/run/", views.import_for_real, name="video-import-run"),
    path("videos/<int:pk>/", views.video_detail, name="video-detail"),
    path("media/v/<str:public_id>.mp4", views.media_video, name="media-video"),
    path("media/p/<str:public_id>.jpg", views.media_poster, name="media-poster"),
    path("media/o/<str:public_id>", views.media_original, name="media-original"),
]
