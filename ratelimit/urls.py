from django.urls import path

from ratelimit import views

urlpatterns = [
    path("ratelimits/", views.RateLimitReportView.as_view(), name="admin-ratelimits"),
]
