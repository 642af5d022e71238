"""DRF's throttle for every API view (``DEFAULT_THROTTLE_CLASSES``), over ratelimit.limiter.

The headers go onto the view's ``headers``, which DRF's ``finalize_response`` copies onto
the response, a 429 included.
"""

from typing import TYPE_CHECKING

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from caching import backend, responses
from ratelimit.limiter import RATE_LIMIT_OUTCOME, Outcome, identity, limiter

if TYPE_CHECKING:  # DRF's views import the throttle classes of its settings: this one
    from rest_framework.views import APIView


class RuleThrottle(BaseThrottle):
    def __init__(self) -> None:
        self.retry_after_s: float | None = None

    def allow_request(self, request: Request, view: "APIView") -> bool:
        rate_limiter = limiter()
        if not rate_limiter.enabled:
            return True
        counted = getattr(request, RATE_LIMIT_OUTCOME, None)
        if counted is not None:  # caching.hitpath counted this request before handing it to the view
            return self._decide(counted[0], view)
        rules = rate_limiter.rules_for(request)
        account = request.data.get("email") if hasattr(request.data, "get") else None
        # What the response cache will look up next (nothing without Redis), read in the same round trip.
        lookup = responses.planned_lookup(view, request)
        outcome, values = rate_limiter.check(
            rules, [identity(rule, request, account) for rule in rules], backend.redis_names(lookup)
        )
        if outcome is not None and outcome.allowed and lookup:
            responses.remember_lookup(request, lookup, backend.decode_raw(lookup, values))
        return self._decide(outcome, view)

    def _decide(self, outcome: Outcome | None, view: "APIView") -> bool:
        if outcome is None:
            return True
        view.headers.update(outcome.headers())
        if not outcome.allowed:
            self.retry_after_s = outcome.retry_after_s()
        return outcome.allowed

    def wait(self) -> float | None:
        return self.retry_after_s
