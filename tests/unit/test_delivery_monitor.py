"""The relay's reports as an operator sees them: the depth gauge, one log line per backlog change."""
from __future__ import annotations

from structlog.testing import capture_logs

from callflow import metrics
from callflow.adapters.delivery.monitor import LoggingDeliveryMonitor


def depth_gauge() -> float:
    return metrics.REGISTRY.get_sample_value("callflow_outbox_depth") or 0.0


def test_depth_goes_to_the_gauge_without_a_log_line() -> None:
    """Every depth change sets callflow_outbox_depth; none of them writes a log line."""
    monitor = LoggingDeliveryMonitor()
    with capture_logs() as logs:
        monitor.depth_changed(42)
        assert depth_gauge() == 42
        monitor.depth_changed(0)
    assert depth_gauge() == 0 and logs == []


def test_backlog_forming_and_drained_are_one_line_each() -> None:
    """Forming is a warning with depth and reason; drained an info line with the count and duration."""
    monitor = LoggingDeliveryMonitor()
    with capture_logs() as logs:
        monitor.backlog_forming(7, "connection")
        monitor.backlog_drained(7, 1.23456)
    assert [(line["log_level"], line["depth"], line["reason"]) for line in logs[:1]] == [("warning", 7, "connection")]
    assert (logs[1]["log_level"], logs[1]["delivered"], logs[1]["seconds"]) == ("info", 7, 1.235)
    assert depth_gauge() == 7
