"""Rate-limit rules, compiled from the data in settings (``RATE_LIMIT_RULES``, ``_OVERRIDES``, ``_SCALE``)."""

import math
import re
from dataclasses import dataclass, replace

SCOPES = ("ip", "user", "account", "global", "endpoint", "object")
ALGORITHMS = ("sliding_window", "gcra", "fixed_window")
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_UNITS |= {"d": 86400, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rule:
    name: str
    limit: int
    window_s: int
    scope: str
    algorithm: str
    burst: int  # gcra only: requests allowed at once; the window algorithms allow ``limit``
    fail_closed: bool
    tiered: bool
    staff_exempt: bool

    def scaled(self, multiplier: int) -> "Rule":
        return replace(self, limit=self.limit * multiplier, burst=self.burst * multiplier)


def parse_rate(rate: str) -> tuple[int, int]:
    """ "100/min" -> (100, 60); "5/15min" -> (5, 900)."""
    match = _RATE.match(rate.lower())
    if not match or match.group(3) not in _UNITS:
        raise ValueError(f"Invalid rate {rate!r}; use e.g. '100/min', '10/h', '5/15min'.")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * _UNITS[unit]


def compile_rules(specs: dict[str, dict], *, scale: float, overrides: str) -> dict[str, Rule]:
    """``overrides`` is "name=rate,name=rate" (the environment's RATE_LIMIT_OVERRIDES)."""
    rates = dict(item.split("=", 1) for item in overrides.split(",") if "=" in item)
    rules = {}
    for name, spec in specs.items():
        count, window = parse_rate(rates.get(name) or spec["rate"])
        limit = max(1, math.floor(count * scale))
        scope, algorithm = spec.get("scope", "user"), spec.get("algorithm", "sliding_window")
        if scope not in SCOPES or algorithm not in ALGORITHMS:
            raise ValueError(f"Rate-limit rule {name!r}: unknown scope {scope!r} or algorithm {algorithm!r}.")
        rules[name] = Rule(
            name=name,
            limit=limit,
            window_s=window,
            scope=scope,
            algorithm=algorithm,
            burst=max(1, math.floor(spec.get("burst", count) * scale)) if algorithm == "gcra" else limit,
            fail_closed=spec.get("fail", "open") == "closed",
            tiered=spec.get("tiered", True),
            staff_exempt=spec.get("staff_exempt", True),
        )
    return rules
