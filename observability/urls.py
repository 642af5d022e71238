"""Probes and metrics at the site root, where load balancers and Prometheus expect them.

ProbeMiddleware serves the same views ahead of host validation; these routes make them
reachable (and reversible) when that middleware is not installed.
"""

from django.urls import path

from observability import views

urlpatterns = [
    path("health/", views.liveness, name="health-live"),
    path("health/ready/", views.readiness, name="health-ready"),
    path("metrics", views.metrics, name="metrics"),
]
