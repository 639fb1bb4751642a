"""Prometheus metrics of the whole service, defined once.

Adapters and entrypoints record into these; ``entrypoints/http.py`` exposes them on /metrics.
Kept outside the hexagon's layers so any outer layer may import it; domain and service_layer never do.
With worker processes (ADR 0110) each worker writes its values to files under
``PROMETHEUS_MULTIPROC_DIR`` and the supervisor's /metrics adds them up: counters and histograms
are summed; each gauge's ``multiprocess_mode`` says how it combines over the live workers. A gauge
read at scrape time (``set_function``) has no value in the supervisor: ``entrypoints/worker.py``
writes it periodically (add it there).

Decisions: ADR 0105, 0106 (RabbitMQ nodes and queue types).
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

SESSIONS_IN_FLIGHT = Gauge(
    "callflow_agi_sessions_in_flight", "AGI sessions being served now", registry=REGISTRY,
    multiprocess_mode="livesum",
)
SESSION_SECONDS = Histogram(
    "callflow_agi_session_seconds",
    "Time from accept to close of an AGI session, per route",
    ["route"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
SESSION_OUTCOMES = Counter(
    "callflow_agi_outcomes_total",
    "AGI sessions by route and CALLFLOW_STATUS set (OK, DEGRADED, ERROR, NONE when nothing could be set)",
    ["route", "status"],
    registry=REGISTRY,
)
PROTOCOL_ERRORS = Counter(
    "callflow_agi_protocol_errors_total",
    "Protocol-level faults: bad header, oversized line, timeout, EOF mid-session, unexpected reply",
    ["kind"],
    registry=REGISTRY,
)
REJECTED_CONNECTIONS = Counter(
    "callflow_agi_rejected_connections_total",
    "Connections refused (source_not_allowed, draining, header_phase_full) or answered by the fallback at once "
    "(overloaded: over the session cap; loop_lag: the event loop ran behind) or closed without a word "
    "(overloaded_closed: the loop ran too far behind for a fallback; header_displaced: still waiting for "
    "its header when the header-phase bound was reached)",
    ["reason"],
    registry=REGISTRY,
)
EVENT_LOOP_LAG = Gauge(
    "callflow_event_loop_lag_seconds", "How far behind the event loop runs (the AGI server sheds calls past a share of the deadline)",
    registry=REGISTRY, multiprocess_mode="livemax",
)
REDIS_SECONDS = Histogram(
    "callflow_redis_seconds", "Redis round trip time", ["op"], buckets=_LATENCY_BUCKETS, registry=REGISTRY
)
REDIS_ERRORS = Counter("callflow_redis_errors_total", "Redis calls that failed or timed out", ["op"], registry=REGISTRY)
PUBLISH_SECONDS = Histogram(
    "callflow_publish_seconds",
    "Time from publish to broker confirm",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
PUBLISH_ERRORS = Counter(
    "callflow_publish_errors_total", "Publishes not confirmed (broker down, nack, returned)", ["reason"], registry=REGISTRY
)
EVENTS_PUBLISHED = Counter(
    "callflow_events_published_total", "Events confirmed by the broker", ["kind"], registry=REGISTRY
)
OUTBOX_DEPTH = Gauge("callflow_outbox_depth", "Events held in the local outbox, not yet confirmed", registry=REGISTRY,
                     multiprocess_mode="livesum")
OUTBOX_USABLE = Gauge(
    "callflow_outbox_usable",
    "1 when the outbox is open and its last write succeeded, 0 when events are refused (see /readyz for why)",
    registry=REGISTRY,
    multiprocess_mode="livemin",  # with workers: 0 when any live worker's outbox refuses events
)

# --- RabbitMQ nodes and queue types -------------------------------------------------------------
AMQP_NODE_CONNECTED = Gauge(
    "callflow_amqp_node_connected",
    "1 for the broker node (host:port of CALLFLOW_AMQP_URL) the publisher is connected to, 0 for the others",
    ["node"],
    registry=REGISTRY,
    multiprocess_mode="livesum",  # with workers: how many live workers are connected to that node
)
AMQP_CONNECTIONS = Counter(
    "callflow_amqp_connections_total",
    "Connections the publisher opened, per node (more than one: reconnections, e.g. after a node loss)",
    ["node"],
    registry=REGISTRY,
)
AMQP_QUEUE_REFUSED = Gauge(
    "callflow_amqp_queue_refused",
    "1 while RabbitMQ refuses to declare this queue (it exists with another type than "
    "CALLFLOW_AMQP_QUEUE_TYPE or other arguments, or its node is down); its events wait in the outbox",
    ["queue"],
    registry=REGISTRY,
    multiprocess_mode="livemax",  # with workers: 1 while any live worker is refused the queue
)

# --- event route ------------------------------------------------------------------------------
EVENT_VALUE_READS = Counter(
    "callflow_event_value_reads_total",
    "How the event route read the dialplan values: combined (one round trip) or per_variable (fallback)",
    ["mode"],
    registry=REGISTRY,
)
EVENT_STATS_SKIPPED = Counter(
    "callflow_event_stats_skipped_total",
    "Events taken into custody whose call-status set could not be updated (the event is still delivered)",
    registry=REGISTRY,
)
