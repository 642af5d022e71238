from django.urls import path

from properties import views

urlpatterns = [
    path("amenities/", views.AmenityListView.as_view(), name="amenity-list"),
    path("host/properties/", views.HostPropertyListView.as_view(), name="host-property-list"),
    path("properties/", views.PropertyListCreateView.as_view(), name="property-list"),
    path("properties/<int:pk>/", views.PropertyDetailView.as_view(), name="property-detail"),
    path("properties/<int:pk>/images/", views.PropertyImageUploadView.as_view(), name="property-images"),
    path(
        "properties/<int:pk>/images/<int:image_id>/file/",
        views.PropertyImageFileView.as_view(),
        name="property-image-file",
    ),
    path("properties/<int:pk>/availability/", views.PropertyAvailabilityView.as_view(), name="property-availability"),
    path("properties/<int:pk>/reviews/", views.PropertyReviewListCreateView.as_view(), name="property-reviews"),
]
