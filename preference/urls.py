from django.urls import path

from . import views

urlpatterns = [
    path("exports/", views.export_list, name="preference-export-list"),
    path("exports/<int:pk>/", views.export_detail, name="preference-export-detail"),
    path("exports/<int:pk>/files/<str:filename>", views.export_file, name="preference-export-file"),
]
