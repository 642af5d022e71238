"""What analytics responses the cache holds and what they depend on."""

from django.utils import timezone
from rest_framework.request import Request
from rest_framework.views import APIView

from caching import namespaces as ns
from caching.keys import params_digest
from caching.namespaces import city_token
from caching.responses import CacheSpec
from caching.specs import per_user
from caching.tracking import Tracked


def dashboard_cache_spec(view: APIView, request: Request) -> CacheSpec:
    """Keyed by the viewer (authorisation is checked on a miss, so an entry only ever
    answers the viewer it was computed for) and by the day its windows end on."""
    host_id = request.query_params.get("host_id", "")
    subject: list[str] = [ns.user(int(host_id))] if host_id.isdigit() and len(host_id) < 19 else []
    return per_user(request, "dashboard", timezone.localdate().isoformat(), also=subject)


def market_cache_spec(view: APIView, request: Request) -> CacheSpec | None:
    city = request.query_params.get("city", "")
    if not city.strip():
        return None  # the view answers the 400
    token = city_token(city)
    # The body repeats the city as asked, so the exact spelling is part of the key.
    spelling = params_digest({"city": city.strip()})
    return CacheSpec(key_parts=[token, spelling, timezone.localdate().isoformat()], namespaces=[ns.market(city)])


# The precomputed figures the market endpoint serves.
MARKET_SNAPSHOT = Tracked(
    model="analytics.MarketSnapshot", fields=("city",), namespaces=lambda row: [ns.market(row["city"])]
)
TRACKED = (MARKET_SNAPSHOT,)
