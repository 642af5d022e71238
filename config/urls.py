from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from core.exceptions import api_not_found
from core.schema import api_docs_access
from core.views import IndexView
from realtime.views import live_demo

api_v1 = [
    path("auth/", include("accounts.urls")),
    path("", include("properties.urls")),
    path("", include("bookings.urls")),
    path("analytics/", include("analytics.urls")),
    path("admin/jobs/", include("jobs.urls")),
    path("admin/cache/", include("caching.urls")),
    path("admin/", include("ratelimit.urls")),
    path("admin/", include("observability.api_urls")),
    # --- Real-time (issue 11): staff REST beside the sockets at /api/v1/ws/ (served by config.asgi)
    path("ws/", include("realtime.urls")),
]

urlpatterns = [
    path("", IndexView.as_view(), name="index"),  # JSON: links to the API, docs, admin, health
    path("", include("observability.urls")),  # /health/, /health/ready/, /metrics
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    # Public only where API_DOCS_PUBLIC says so (development by default); assets from the sidecar, no CDN.
    path("api/schema/", api_docs_access(SpectacularAPIView.as_view()), name="schema"),
    path("api/docs/", api_docs_access(SpectacularSwaggerView.as_view(url_name="schema")), name="api-docs"),
    path("api/redoc/", api_docs_access(SpectacularRedocView.as_view(url_name="schema")), name="api-redoc"),
    # Unknown API paths answer in the JSON error shape even with DEBUG on, for every method.
    re_path(r"^api/", api_not_found, name="api-not-found"),
    path("live/", live_demo, name="live-demo"),  # real-time (issue 11): host demo page
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

handler400 = "core.exceptions.json_bad_request"
handler403 = "core.exceptions.json_permission_denied"
handler404 = "core.exceptions.json_not_found"
handler500 = "core.exceptions.json_server_error"
