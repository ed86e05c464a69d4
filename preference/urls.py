from django.urls import path

from . import views

urlpatterns = [
    path("exports/", views.export_list, name="preference-export-list"),
    path("exports/<int:pk>/", views.export_detail, name="preference-export-detail"),
    path("exports/<int:pk>/files/<str:filename>", views.export_file, name="preference-export-file"),
    path("training/", views.training_run_list, name="training-run-list"),
    path("training/<int:pk>/", views.training_run_detail, name="training-run-detail"),
]
