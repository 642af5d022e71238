"""The peer answers on Staybase's paths, so one scenario loads either app."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from bench.peer import views

router = SimpleRouter()
router.register("properties", views.PropertyViewSet, basename="peer-property")

urlpatterns = [
    path("api/v1/auth/me/", views.MeView.as_view()),
    path("api/v1/", include(router.urls)),
]
