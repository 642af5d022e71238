"""What a fault scenario measured, judged against issue 10's targets, as one table row.

Pure functions over the recorded samples and the invariant checks, so they are tested
without servers (tests/bench/test_faults_report.py).
"""

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.faults_load import Sample
from bench.load import percentile

# Targets (issue 10). During a Redis hang p99 stays within 3x before, plus the one socket
# timeout (the API runs with this one) that each worker, and requests queued behind it, wait
# before the first timeout opens its circuit: a sync worker cannot know Redis hangs sooner.
HANG_P99_FACTOR = 3.0
HANG_SOCKET_TIMEOUT_S = 0.2
RECOVERY_TARGET_S = 2.0
PHASES = ("before", "during", "after")


@dataclass(frozen=True)
class Check:
    """One invariant after a scenario: whether it held, and the numbers that say so."""

    name: str
    ok: bool
    detail: str


# A text log line (observability.logging.TextFormatter) at WARNING or above.
LOUD_LINE = re.compile(rb"^\S+ \S+ (WARNING|ERROR|CRITICAL) ", re.MULTILINE)
TRACEBACK = b"Traceback (most recent call last)"


@dataclass(frozen=True)
class LogCount:
    """What the API and the workers logged during a scenario: lines at WARNING or above, tracebacks."""

    loud: int = 0
    tracebacks: int = 0

    @staticmethod
    def marks(paths: list[Path]) -> dict[Path, int]:
        return {path: path.stat().st_size if path.exists() else 0 for path in paths}

    @classmethod
    def of(cls, marks: dict[Path, int]) -> "LogCount":
        loud = tracebacks = 0
        for path, offset in marks.items():
            with path.open("rb") as log:
                log.seek(offset)
                text = log.read()
            loud += len(LOUD_LINE.findall(text))
            tracebacks += text.count(TRACEBACK)
        return cls(loud, tracebacks)


@dataclass
class ScenarioResult:
    name: str
    samples: list[Sample]
    # When the fault began and when the dependency was back (time.monotonic()).
    fault_at: float
    returned_at: float
    checks: list[Check] = field(default_factory=list)
    # Targets that apply: p99 during a hang within 3x before; recovery once a dependency returns.
    hang: bool = False
    dependency: bool = False
    notes: list[str] = field(default_factory=list)
    log: LogCount = field(default_factory=LogCount)

    @classmethod
    def broken(cls, name: str, error: str) -> "ScenarioResult":
        """A scenario the harness could not finish."""
        return cls(name=name, samples=[], fault_at=0.0, returned_at=0.0, checks=[Check("harness", False, error)])

    def phase(self, name: str) -> list[Sample]:
        if name == "before":
            return [s for s in self.samples if s.started < self.fault_at]
        if name == "during":
            return [s for s in self.samples if self.fault_at <= s.started < self.returned_at]
        return [s for s in self.samples if s.started >= self.returned_at]

    def p(self, percent: float, phase: str) -> float:
        return percentile(sorted(s.elapsed for s in self.phase(phase)), percent) * 1000

    @property
    def histogram(self) -> Counter:
        return Counter(status_label(s) for s in self.samples)

    @property
    def server_errors(self) -> int:
        """5xx responses, except a 503 that says when to retry (a dependency was needed and down)."""
        return sum(1 for s in self.samples if s.status >= 500 and not (s.status == 503 and s.retry_after))

    @property
    def unanswered(self) -> int:
        return sum(1 for s in self.samples if s.status == 0)

    @property
    def recovery_s(self) -> float | None:
        return recovery_s(self.samples, self.returned_at)

    def failures(self) -> list[str]:
        """Why this scenario misses a target; empty when it meets them all."""
        reasons = []
        if self.server_errors:
            reasons.append(f"{self.server_errors} 5xx without Retry-After (target 0)")
        if self.unanswered:
            reasons.append(f"{self.unanswered} requests got no response (timeout or reset)")
        if self.hang:
            before, during = self.p(99, "before"), self.p(99, "during")
            allowed = HANG_P99_FACTOR * before + HANG_SOCKET_TIMEOUT_S * 1000
            if not during <= allowed:
                reasons.append(
                    f"p99 during the hang {during:.0f} ms > {HANG_P99_FACTOR:.0f}x before ({before:.0f} ms)"
                    f" + one socket timeout ({HANG_SOCKET_TIMEOUT_S * 1000:.0f} ms)"
                )
        if self.dependency:
            by_kind = recovery_by_kind(self.samples, self.returned_at)
            stuck = sorted(kind for kind, seconds in by_kind.items() if seconds is None)
            slow = {k: s for k, s in by_kind.items() if s is not None and s >= RECOVERY_TARGET_S}
            if stuck:
                reasons.append(f"never recovered: {', '.join(stuck)} still failed at the end of the load")
            elif slow:
                kinds = ", ".join(f"{kind} {seconds:.1f} s" for kind, seconds in sorted(slow.items()))
                reasons.append(f"recovery {max(slow.values()):.1f} s (target < {RECOVERY_TARGET_S:.0f} s): {kinds}")
        reasons.extend(f"invariant {c.name}: {c.detail}" for c in self.checks if not c.ok)
        return reasons


def status_label(sample: Sample) -> str:
    if sample.status == 0:
        return "none"
    if sample.status == 503 and sample.retry_after:
        return "503+RA"
    return str(sample.status)


def recovery_s(samples: Iterable[Sample], returned_at: float) -> float | None:
    """Seconds from the dependency's return until every kind of request succeeds again: the
    slowest kind of ``recovery_by_kind``. None: some kind still failed at the end."""
    by_kind = recovery_by_kind(samples, returned_at)
    if any(seconds is None for seconds in by_kind.values()):
        return None
    return max((seconds for seconds in by_kind.values() if seconds is not None), default=0.0)


def recovery_by_kind(samples: Iterable[Sample], returned_at: float) -> dict[str, float | None]:
    """Per kind: the end of the first successful request sent after the return and after the
    kind's last failure (a request that waited on the dead dependency and failed after it
    came back counts as a failure after the return), in seconds after the return; None when
    the kind still failed at the end. Kinds with no request after the return are left out.
    """
    by_kind: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.ended >= returned_at:
            by_kind.setdefault(sample.kind, []).append(sample)
    recovered: dict[str, float | None] = {}
    for kind, kind_samples in by_kind.items():
        last_failure = max((s.ended for s in kind_samples if s.failed), default=returned_at)
        successes = [s.ended for s in kind_samples if not s.failed and s.started >= last_failure]
        recovered[kind] = min(successes) - returned_at if successes else None
    return recovered


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def _statuses(histogram: Counter) -> str:
    def order(label: str) -> tuple[int, str]:
        return (int(label[:3]) if label[:3].isdigit() else 999, label)

    return " ".join(f"{label}:{histogram[label]}" for label in sorted(histogram, key=order))


def format_table(results: list[ScenarioResult]) -> str:
    """A Markdown table, one row per scenario, then the reasons for each FAIL."""
    header = (
        "| scenario | requests | statuses | 5xx | p50 ms before/during/after | p99 ms before/during/after "
        "| recovery s | invariants | log ≥WARNING (tracebacks) | result |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for result in results:
        recovery = result.recovery_s
        lines.append(
            "| "
            + " | ".join(
                [
                    result.name,
                    str(len(result.samples)),
                    _statuses(result.histogram),
                    str(result.server_errors) + (f" (+{result.unanswered} no response)" if result.unanswered else ""),
                    "/".join(_ms(result.p(50, phase)) for phase in PHASES),
                    "/".join(_ms(result.p(99, phase)) for phase in PHASES),
                    ("-" if not result.dependency else "never" if recovery is None else f"{recovery:.2f}"),
                    "; ".join(f"{'' if c.ok else '✗ '}{c.name} {c.detail}" for c in result.checks),
                    f"{result.log.loud} ({result.log.tracebacks})",
                    "FAIL" if result.failures() else "PASS",
                ]
            )
            + " |"
        )
    failing = [result for result in results if result.failures()]
    if failing:
        lines.append("")
        for result in failing:
            lines.append(f"- **{result.name}**: " + "; ".join(result.failures()))
    return "\n".join(lines)
