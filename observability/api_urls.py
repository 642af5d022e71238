from django.urls import path

from observability import views

urlpatterns = [
    path("performance/", views.PerformanceReportView.as_view(), name="admin-performance"),
]
