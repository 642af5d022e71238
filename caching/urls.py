from django.urls import path

from caching import views

urlpatterns = [
    path("stats/", views.CacheStatsView.as_view(), name="admin-cache-stats"),
    path("clear/", views.CacheClearView.as_view(), name="admin-cache-clear"),
    path("invalidate/user/<int:pk>/", views.UserCacheInvalidateView.as_view(), name="admin-cache-invalidate-user"),
    path(
        "invalidate/property/<int:pk>/",
        views.PropertyCacheInvalidateView.as_view(),
        name="admin-cache-invalidate-property",
    ),
]
