"""Read callflow's Prometheus metrics in tests (``sample("callflow_agi_outcomes_total", route="x")``)."""
from __future__ import annotations

from callflow.metrics import REGISTRY


def sample(name: str, **labels: str) -> float:
    """The current value of one sample; 0 when it was never recorded."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
