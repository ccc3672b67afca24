"""Prometheus metrics of one serving process (`/metrics`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from opsroom.store import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DURATIONS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 14400)


class PoolFigures(Protocol):
    """What the warm Python pool did so far (the runner's PoolStats)."""

    @property
    def size(self) -> int:
        """Fork servers running."""
        ...

    @property
    def hits(self) -> int:
        """Python jobs forked from a warm server."""
        ...

    @property
    def misses(self) -> int:
        """Python jobs started cold."""
        ...


class _PoolCollector(Collector):
    """The pool's figures as they were at the last render (counters kept by the runner)."""

    def __init__(self) -> None:
        self.figures: PoolFigures | None = None

    def collect(self) -> Iterator[Metric]:
        """The three families, once figures were given."""
        f = self.figures
        if f is None:
            return
        yield GaugeMetricFamily(
            "opsroom_python_pool_size", "Warm Python fork servers running.", value=f.size
        )
        yield CounterMetricFamily(
            "opsroom_python_pool_hits", "Python jobs forked from a warm server.", value=f.hits
        )
        yield CounterMetricFamily(
            "opsroom_python_pool_misses",
            "Python jobs started as a fresh interpreter (no warm server ready).",
            value=f.misses,
        )


class Metrics:
    """The counters, gauges and histograms opsroom exports; one registry per process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter(
            "opsroom_messages_received", "Chat messages received.", ["adapter"], registry=r
        )
        self.commands = Counter(
            "opsroom_commands",
            "Messages handled, by outcome (succeeded, failed, refused, ...).",
            ["outcome"],
            registry=r,
        )
        self.job_duration = Histogram(
            "opsroom_job_duration_seconds",
            "How long finished jobs ran, by final state.",
            ["state"],
            buckets=_DURATIONS,
            registry=r,
        )
        self.queue_depth = Gauge("opsroom_queue_depth", "Jobs waiting to start.", registry=r)
        self.running_jobs = Gauge("opsroom_running_jobs", "Jobs running now.", registry=r)
        self.awaiting_approval = Gauge(
            "opsroom_jobs_awaiting_approval", "Jobs waiting for an approval.", registry=r
        )
        self.adapter_connected = Gauge(
            "opsroom_adapter_connected",
            "1 when a chat adapter is connected, 0 otherwise.",
            ["adapter"],
            registry=r,
        )
        self.http_requests = Counter(
            "opsroom_http_requests", "HTTP requests served.", ["method", "status"], registry=r
        )
        self.python_pool = _PoolCollector()
        r.register(self.python_pool)

    async def render(self, store: Store, python_pool: PoolFigures | None = None) -> bytes:
        """The exposition text, with the job gauges read fresh from the store (and the
        warm Python pool's figures, when given)."""
        self.python_pool.figures = python_pool
        counts = await store.job_counts()
        self.queue_depth.set(counts.get("queued", 0))
        self.running_jobs.set(counts.get("running", 0))
        self.awaiting_approval.set(counts.get("awaiting_approval", 0))
        return generate_latest(self.registry)
