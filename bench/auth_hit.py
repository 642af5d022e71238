"""The cost of one cached token authentication (CachedTokenAuthentication on a cache hit).

    REDIS_URL=redis://127.0.0.1:6379/<db> .venv/bin/python bench/auth_hit.py [--iterations N] [--rounds R]

Runs in-process against a throw-away SQLite database and the Redis in ``REDIS_URL`` (the
local-memory cache without it): creates one user and token, authenticates once to fill the
cache, then times ``authenticate_credentials`` on hits and prints the median round's
microseconds per call (wall clock, and CPU of this process: less sensitive to a busy machine)
and Redis commands per call (from the server's command counter).
Its keys go under the prefix ``sbauthbench`` and are deleted afterwards.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="staybase-auth-bench-")
    os.environ.pop("DATABASE_URL", None)
    os.environ["SQLITE_PATH"] = str(Path(workdir) / "bench.sqlite3")
    os.environ["CACHE_KEY_PREFIX"] = "sbauthbench"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from accounts.models import User
    from caching import backend
    from caching.auth import CachedTokenAuthentication

    call_command("migrate", verbosity=0)
    user = User.objects.create_user(email="bench@example.com")  # no password: it never logs in
    key = Token.objects.create(user=user).key
    auth = CachedTokenAuthentication()
    auth.authenticate_credentials(key)  # fills the cache
    auth.authenticate_credentials(key)

    def commands() -> int | None:
        if not backend.is_redis():
            return None
        return backend.redis_client().info("stats")["total_commands_processed"]

    per_call, cpu_per_call, trips = [], [], []
    for _ in range(args.rounds):
        before = commands()
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(args.iterations):
            auth.authenticate_credentials(key)
        per_call.append((time.perf_counter() - started) / args.iterations * 1e6)
        cpu_per_call.append((time.process_time() - cpu_started) / args.iterations * 1e6)
        after = commands()
        if before is not None:
            # The INFO call itself counts once; the stats flush adds a few per round.
            trips.append((after - before - 1) / args.iterations)
    print(f"backend: {backend.backend_name()}, {args.rounds} rounds x {args.iterations} cached authentications")
    print(f"us per cached authentication (median round): {statistics.median(per_call):.1f}")
    print(f"rounds: {', '.join(f'{value:.1f}' for value in per_call)}")
    print(f"CPU us of this process per cached authentication (median round): {statistics.median(cpu_per_call):.1f}")
    if trips:
        print(f"Redis commands per cached authentication: {statistics.median(trips):.3f}")
    backend.clear_all()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
