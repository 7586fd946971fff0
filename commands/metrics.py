"""Prometheus metrics for the command side, on a registry the app owns.

A registry per app (not the global one) keeps tests and several apps in one
process from tripping over duplicate metric names.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class CommandMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.commands = Counter(
            "vigil_commands_total",
            "Commands handled, by command name and outcome.",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.command_seconds = Histogram(
            "vigil_command_duration_seconds",
            "Time to handle a command end to end, by command name and outcome.",
            ["command", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.append_seconds = Histogram(
            "vigil_event_append_duration_seconds",
            "Time to append one commit to the event store.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.conflicts = Counter(
            "vigil_append_conflicts_total",
            "Appends rejected because the aggregate moved on, by command name.",
            ["command"],
            registry=self.registry,
        )

    def record(self, command: str, outcome: str, seconds: float) -> None:
        """Count one command and its latency; labelled children are looked up once."""
        children = self._children.get((command, outcome))
        if children is None:
            children = (
                self.commands.labels(command, outcome),
                self.command_seconds.labels(command, outcome),
            )
            self._children[(command, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)
