from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

# Link name -> URL name: what a newcomer at the site root looks for.
INDEX_LINKS = {
    "docs": "api-docs",
    "redoc": "api-redoc",
    "schema": "schema",
    "admin": "admin:index",
    "health": "health-live",
    "ready": "health-ready",
}


class IndexView(APIView):
    """The site root: where the API, its documentation, the admin and the health checks are."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        links = {name: request.build_absolute_uri(reverse(url_name)) for name, url_name in INDEX_LINKS.items()}
        # Every endpoint lives under api_base (the docs list them); the base itself is no resource.
        return Response(
            {
                "name": settings.SPECTACULAR_SETTINGS["TITLE"],
                "api_base": request.build_absolute_uri("/api/v1/"),
                "links": links,
            }
        )
