"""The app's URLconf plus benchmark-only views; selected with DJANGO_ROOT_URLCONF=bench.urls."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from bench import views
from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as app_urlpatterns

router = SimpleRouter()
router.register("bench/stock/properties", views.StockPropertyViewSet, basename="bench-stock-property")

# First, so config.urls's catch-alls never shadow them.
urlpatterns = [
    path("bench/bare/<str:name>/", views.bare_body, name="bench-bare"),
    *router.urls,
    *app_urlpatterns,
]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
