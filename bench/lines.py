"""Non-blank lines per app, infrastructure against domain (`make lines`).

Counts every file an app holds (Python, templates, scripts), migrations and byte code excluded, so
the ratio cannot be improved by moving code into a template. Issue 13's target is a ratio of at most
1.3 (infrastructure lines per domain line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INFRASTRUCTURE = ("caching", "jobs", "observability", "core", "ratelimit")
DOMAIN = ("accounts", "properties", "bookings", "analytics")
TARGET_RATIO = 1.3


def counted_files(app: Path) -> list[Path]:
    return sorted(
        path
        for path in app.rglob("*")
        if path.is_file()
        and "migrations" not in path.relative_to(app).parts
        and "__pycache__" not in path.parts
        and path.suffix not in {".pyc", ".pyo"}
    )


def non_blank_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def app_lines(name: str) -> tuple[int, int]:
    """(Python lines, other lines) of one app."""
    python = other = 0
    for path in counted_files(ROOT / name):
        if path.suffix == ".py":
            python += non_blank_lines(path)
        else:
            other += non_blank_lines(path)
    return python, other


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help=f"exit 1 when the ratio is above {TARGET_RATIO}")
    args = parser.parse_args(argv)

    totals: dict[str, int] = {}
    print(f"{'app':<16}{'python':>8}{'other':>8}{'total':>8}")
    for group, apps in (("infrastructure", INFRASTRUCTURE), ("domain", DOMAIN)):
        totals[group] = 0
        for app in apps:
            python, other = app_lines(app)
            totals[group] += python + other
            print(f"  {app:<14}{python:>8}{other:>8}{python + other:>8}")
        print(f"{group:<32}{totals[group]:>8}")
    ratio = totals["infrastructure"] / totals["domain"]
    print(f"ratio infrastructure/domain: {ratio:.2f} (target <= {TARGET_RATIO})")
    return 1 if args.check and ratio > TARGET_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
