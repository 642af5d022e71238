from django.urls import path

from analytics import views

urlpatterns = [
    path("dashboard/", views.DashboardView.as_view(), name="analytics-dashboard"),
    path("market/", views.MarketView.as_view(), name="analytics-market"),
]
