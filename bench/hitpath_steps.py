"""Instructions of each step of a cached hit (caching/hitpath.py), counted by callgrind in one process.

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/hitpath_steps.py \\
        --path /api/v1/properties/<id>/ --token <a guest's token key> [--requests 50]

Runs itself under ``valgrind --tool=callgrind`` (as bench/instructions.py does: dumps before
each ``os.getppid()``), answers the path once so the entry and the token's context are cached,
then repeats each step ``--requests`` times between two dumps and prints millions of
instructions per call: the whole hit (the middleware's ``__call__`` with nothing below it), the
rate-limit script call alone (as the hit sends it: rules, guard and reads), a Redis PING through
the same client and breaker (the floor of any round trip through redis-py), and the steps
around them. The rest of a request (WSGI, the outer middleware, the access log and metrics) is
what the bare view costs too. Uses the app's settings (``DJANGO_ENV=development``, rate limits
scaled out of the way as bench/run.py scales them).
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.instructions import read_counts, under_callgrind  # noqa: E402


def _steps(path: str, token: str, requests: int) -> list[str]:
    """Run inside callgrind: each step ``requests`` times between two dumps; returns their names."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.test import Client, RequestFactory

    from caching import backend, layer, responses
    from caching.circuit import breaker_for
    from caching.hitpath import CachedHitMiddleware
    from caching.keys import cache_key
    from caching.redis import STORE_ERRORS, shared_client
    from ratelimit.limiter import identity, limiter

    headers = {"HTTP_AUTHORIZATION": f"Token {token}", "HTTP_ACCEPT": "application/json"}
    for _ in range(3):
        assert Client().get(path, **headers).status_code == 200  # cached: entry and token context
    nothing_below = CachedHitMiddleware(lambda request: None)  # a fall-through answers None
    factory = RequestFactory()

    def request():
        return factory.get(path, **headers)

    # The arguments of the hit's one script call, as the middleware builds them.
    probe = request()
    route = nothing_below.routes.match(probe)
    assert route is not None, f"{path} is not a cacheable route"
    probe.resolver_match = route.match
    known = nothing_below.tokens.known(token)
    assert known is not None, "the token has no servable cached context"
    probe.user = known.user
    kind, spec = route.plan
    view = route.view_class(**route.match.func.view_initkwargs)
    from rest_framework.request import Request

    drf_request = Request(probe)
    drf_request.user, drf_request.auth = known.user, known.auth
    view.setup(probe, *route.match.args, **route.match.kwargs)
    decided = spec(view, drf_request, *route.match.args, **route.match.kwargs)
    key = cache_key(kind, *decided.key_parts)
    reads = layer.lookup_keys(key, decided.namespaces)
    rate_limiter = limiter()
    rules = rate_limiter.rules_for(probe)
    identities = [identity(rule, probe) for rule in rules]
    names = backend.redis_names(reads)
    _, values = rate_limiter.check(rules, identities, names, guard=known.guard)
    found = backend.decode_raw(reads, values)
    prefetched = layer.Prefetched(keys=frozenset(reads), found=found)
    body, how = layer.peek(kind=kind, key=key, namespaces=decided.namespaces, l1_allowed=False, prefetched=prefetched)
    client, breaker = shared_client(), breaker_for("redis")

    steps = {
        "the request object alone (RequestFactory)": request,
        "whole hit: CachedHitMiddleware.__call__, request included": lambda: nothing_below(request()),
        "path -> route (remembered per path)": lambda: nothing_below.routes.match(probe),
        "token -> known context (remembered per token)": lambda: nothing_below.tokens.known(token),
        "cache spec + key + lookup keys + their Redis names": lambda: backend.redis_names(
            layer.lookup_keys(
                cache_key(kind, *spec(view, drf_request, *route.match.args, **route.match.kwargs).key_parts),
                decided.namespaces,
            )
        ),
        "rate-limit rules + identities": lambda: [identity(rule, probe) for rule in rate_limiter.rules_for(probe)],
        "the one round trip: limiter.check (script: guard, count, read)": lambda: rate_limiter.check(
            rules, identities, names, guard=known.guard
        ),
        "a PING through the same client and breaker": lambda: breaker.call(client.ping, errors=STORE_ERRORS),
        "decode the read values (entry, generations)": lambda: backend.decode_raw(reads, values),
        "layer.peek on the prefetched read": lambda: layer.peek(
            kind=kind, key=key, namespaces=decided.namespaces, l1_allowed=False, prefetched=prefetched
        ),
        "response + its headers (cached_response, DRF's, X-Frame, Content-Length)": lambda: (
            nothing_below.common.process_response(
                probe,
                nothing_below.xframe.process_response(
                    probe, responses.cached_response(body, request=probe, how=how, per_user=decided.per_user)
                ),
            )
        ),
    }
    for step in steps.values():
        for _ in range(3):
            step()
        os.getppid()  # dump: everything before this step's measured calls
        for _ in range(requests):
            step()
        os.getppid()  # dump: exactly the measured calls
    return list(steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        json.dump(_steps(args.path, args.token, args.requests), sys.stdout)
        return 0
    env = {"DJANGO_ENV": "development", "DJANGO_DEBUG": "0", "RATE_LIMIT_SCALE": "1000000", **os.environ}
    env.setdefault("CACHE_ENABLED", "1")
    argv = [str(Path(__file__).resolve()), "--inside", f"--path={args.path}", f"--token={args.token}",
            f"--requests={args.requests}"]  # fmt: skip
    with under_callgrind(argv, env=env) as (stdout, directory):
        names = json.loads(stdout)
        counts = read_counts(directory, "callgrind.out.", names, args.requests)
    print(f"| step ({args.path}, {args.requests} calls each, callgrind) | M instructions per call |")
    print("|---|---:|")
    for name in names:
        print(f"| {name} | {counts[name] / 1e6:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
