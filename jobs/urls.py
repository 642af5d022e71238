from django.urls import path

from jobs import views

urlpatterns = [
    path("stats/", views.JobStatsView.as_view(), name="admin-jobs-stats"),
]
