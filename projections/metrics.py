"""Prometheus metrics of the projector, on a registry the caller passes in.

A registry per projector (not the process-wide default) lets tests and
several projectors in one process keep their own figures, and lets the
composition root expose them on whatever ``/metrics`` it serves.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ProjectionMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ["projection"]
        self.lag = Gauge(
            "vigil_projection_lag",
            "Stream messages not yet applied: stream position minus checkpoint",
            labels,
            registry=self.registry,
        )
        self.position = Gauge(
            "vigil_projection_position",
            "Last stream position applied (the checkpoint)",
            labels,
            registry=self.registry,
        )
        self.events = Counter(
            "vigil_projection_events_applied",
            "Events applied to the read model",
            labels,
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "vigil_projection_dead_letters",
            "Events parked in dead_letters because they failed to apply",
            labels,
            registry=self.registry,
        )
        self.parked = Gauge(
            "vigil_projection_dead_letters_parked",
            "Dead letters currently in the dead_letters table",
            labels,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "vigil_projection_batch_seconds",
            "Time to apply and commit one batch",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.restarts = Counter(
            "vigil_projection_restarts",
            "Times the projector reopened its feed after an error",
            registry=self.registry,
        )
