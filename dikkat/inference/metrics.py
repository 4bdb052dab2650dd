"""Prometheus metrics for the inference service, labelled by model (batcher name)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_COMPUTE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_RATIO_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

BATCH_SIZE = Histogram(
    "dikkat_batch_size", "Items per run_batch call.", ["model"], buckets=_SIZE_BUCKETS
)
QUEUE_WAIT = Histogram(
    "dikkat_queue_wait_seconds",
    "Time from submit until the item is taken into a batch.",
    ["model"],
    buckets=_WAIT_BUCKETS,
)
BATCH_COMPUTE = Histogram(
    "dikkat_batch_compute_seconds",
    "Wall time of one run_batch call.",
    ["model"],
    buckets=_COMPUTE_BUCKETS,
)
PADDING_EFFICIENCY = Histogram(
    "dikkat_padding_efficiency",
    "Real tokens / (max cost x batch size) per run_batch call.",
    ["model"],
    buckets=_RATIO_BUCKETS,
)
REJECTED = Counter("dikkat_rejected", "Requests rejected because the queue was full.", ["model"])
TIMED_OUT = Counter("dikkat_timed_out", "Requests past their deadline before a result.", ["model"])
BATCH_ERRORS = Counter(
    "dikkat_batch_errors", "run_batch calls that raised or returned a wrong length.", ["model"]
)
QUEUE_DEPTH = Gauge("dikkat_queue_depth", "Items waiting in the queue.", ["model"])


@dataclass(frozen=True)
class BatcherMetrics:
    """The metric children of one model, resolved once."""

    batch_size: Histogram
    queue_wait: Histogram
    batch_compute: Histogram
    padding_efficiency: Histogram
    rejected: Counter
    timed_out: Counter
    batch_errors: Counter
    queue_depth: Gauge

    @classmethod
    def for_model(cls, model: str) -> BatcherMetrics:
        """Bind every metric to the `model` label."""
        return cls(
            batch_size=BATCH_SIZE.labels(model=model),
            queue_wait=QUEUE_WAIT.labels(model=model),
            batch_compute=BATCH_COMPUTE.labels(model=model),
            padding_efficiency=PADDING_EFFICIENCY.labels(model=model),
            rejected=REJECTED.labels(model=model),
            timed_out=TIMED_OUT.labels(model=model),
            batch_errors=BATCH_ERRORS.labels(model=model),
            queue_depth=QUEUE_DEPTH.labels(model=model),
        )
