"""A breaker's events as Prometheus counts them: the counter is the only record of them."""

from prometheus_client import REGISTRY


class CircuitEvents:
    """``events["opened"]``: how many times breaker ``name`` counted the event since this was made."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._before = {event: self._total(event) for event in ("failures", "opened", "closed", "short_circuited")}

    def _total(self, event: str) -> float:
        labels = {"breaker": self.name, "event": event}
        return REGISTRY.get_sample_value("staybase_circuit_breaker_events_total", labels) or 0.0

    def __getitem__(self, event: str) -> float:
        return self._total(event) - self._before[event]
