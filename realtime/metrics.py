"""Prometheus metrics of real-time delivery (deploy/prometheus alerts on drops)."""

from prometheus_client import Counter, Gauge, Histogram

sockets_open = Gauge(
    "staybase_realtime_sockets_open", "Open WebSockets in this socket process.", multiprocess_mode="livesum"
)
connects_total = Counter("staybase_realtime_connects_total", "WebSocket handshakes accepted.")
disconnects_total = Counter("staybase_realtime_disconnects_total", "WebSockets closed, by close code.", ["code"])
events_emitted_total = Counter(
    "staybase_realtime_events_emitted_total", "Events committed to the event log, by event.", ["event"]
)
events_delivered_total = Counter("staybase_realtime_events_delivered_total", "Event messages sent to sockets live.")
events_replayed_total = Counter(
    "staybase_realtime_events_replayed_total", "Event messages sent from the log (resume, catching up a gap)."
)
resyncs_total = Counter("staybase_realtime_resyncs_total", "resync messages: history too old or epoch changed.")
events_dropped_total = Counter(
    "staybase_realtime_events_dropped_total",
    "Event messages that did not reach a subscribed socket (slow_consumer, forbidden).",
    ["reason"],
)
slow_consumer_closes_total = Counter(
    "staybase_realtime_slow_consumer_closes_total", "Sockets closed with 4413 because their send buffer was full."
)
delivery_latency_seconds = Histogram(
    "staybase_realtime_delivery_latency_seconds",
    "From the event's transaction to the message handed to the socket.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
limit_checks_failed_total = Counter(
    "staybase_realtime_limit_checks_failed_total",
    "Connection-limit operations that could not reach Redis (admit: the socket was let in).",
    ["operation"],
)
# Stops of the loop, from a millisecond (noticeable in a delivery) to seconds.
STALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
loop_lag_seconds = Histogram(
    "staybase_realtime_loop_lag_seconds",
    "How late the socket process's event loop woke a 10 ms sleep: every delivery waits as long.",
    buckets=STALL_BUCKETS,
)
gc_pause_seconds = Histogram(
    "staybase_realtime_gc_pause_seconds",
    "Garbage collections in the socket process, by generation: the loop stops for each.",
    ["generation"],
    buckets=STALL_BUCKETS,
)
