"""Views that exist only for the benchmark (mounted by bench/urls.py, never by config/urls.py).

* ``bare_body``: a plain Django view answering the bytes another endpoint answered, through
  the same middleware stack and nothing else (no DRF, no auth, no throttle, no cache): the
  ceiling a cached response could reach on this stack. The harness's query counter writes
  those bytes to ``BENCH_BODY_DIR/<scenario>.json``; each worker reads a file once.
* ``StockPropertyViewSet``: what a team typically writes first. A ``ModelViewSet`` with a
  ``ModelSerializer`` over ``Property``: the same fields as the search list, no
  ``select_related``/``prefetch_related`` (one query per listing for amenities and one for
  the cover image), page-number pagination with its ``COUNT(*)``, no cache.
"""

import os
from pathlib import Path

from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import serializers, viewsets

from properties.models import Property

_bodies: dict[str, bytes] = {}


def bare_body(request: HttpRequest, name: str) -> HttpResponse:
    body = _bodies.get(name)
    if body is None:
        path = Path(os.environ.get("BENCH_BODY_DIR", "")) / f"{name}.json"
        if not name.replace("_", "").isalnum() or not path.is_file():
            raise Http404(f"No captured body for {name!r}.")
        body = _bodies[name] = path.read_bytes()
    return HttpResponse(body, content_type="application/json")


class StockPropertySerializer(serializers.ModelSerializer):
    amenities = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    cover_image = serializers.SerializerMethodField()

    class Meta:
        model = Property
        fields = [
            "id",
            "title",
            "property_type",
            "city",
            "country",
            "latitude",
            "longitude",
            "price_per_night",
            "cleaning_fee",
            "currency",
            "max_guests",
            "bedrooms",
            "bathrooms",
            "rating_average",
            "review_count",
            "amenities",
            "cover_image",
            "is_active",
            "host",
        ]

    def get_cover_image(self, obj: Property) -> str | None:
        image = obj.images.order_by("position").first()
        return self.context["request"].build_absolute_uri(image.image.url) if image else None


class StockPropertyViewSet(viewsets.ModelViewSet):
    queryset = Property.objects.filter(is_active=True)
    serializer_class = StockPropertySerializer
    filterset_fields = ["city"]
