"""Prometheus metrics for the command side, on a registry the app owns.

A registry per app (not the global one) keeps tests and several apps in one
process from tripping over duplicate metric names.

The per-command series (commands, their latency, the append latency) are kept
as plain numbers and turned into metric families only when scraped:
prometheus_client's ``Counter`` and ``Histogram`` take a lock and walk the
buckets in Python on every observation, five times per command, which was a
few percent of a command's CPU. The exposed series (names, labels, buckets,
``_created``) are the ones those classes would expose.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Latency:
    """One histogram series: bucket counts (the last is +Inf), sum and creation time."""

    __slots__ = ("_bounds", "buckets", "created", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(self._bounds, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.buckets)


class _Timings:
    """A labelled counter and histogram pair fed by one call per event."""

    def __init__(
        self, counter: str, counter_help: str, histogram: str, histogram_help: str
    ) -> None:
        self.counter = counter
        self.counter_help = counter_help
        self.histogram = histogram
        self.histogram_help = histogram_help
        self.labels = ("command", "outcome")
        self.bounds = _LATENCY_BUCKETS
        self.les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        self.series: dict[tuple[str, str], Latency] = {}

    def record(self, command: str, outcome: str, seconds: float) -> None:
        series = self.series.get((command, outcome))
        if series is None:
            series = self.series[(command, outcome)] = Latency(self.bounds)
        series.observe(seconds)

    def collect(self) -> Iterator[Metric]:
        counter = CounterMetricFamily(self.counter, self.counter_help, labels=self.labels)
        histogram = HistogramMetricFamily(self.histogram, self.histogram_help, labels=self.labels)
        for labels, series in list(self.series.items()):
            counter.add_metric(labels, series.count, created=series.created)
            _add_histogram(histogram, self.les, labels, series)
        yield counter
        yield histogram


class _Histogram:
    """An unlabelled histogram with ``observe``, exposed like prometheus_client's."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.les = [floatToGoString(b) for b in _LATENCY_BUCKETS] + ["+Inf"]
        self.series = Latency(_LATENCY_BUCKETS)
        self.observe = self.series.observe

    def collect(self) -> Iterator[Metric]:
        histogram = HistogramMetricFamily(self.name, self.documentation, labels=())
        _add_histogram(histogram, self.les, (), self.series)
        yield histogram


def _add_histogram(
    family: HistogramMetricFamily, les: list[str], labels: Sequence[str], series: Latency
) -> None:
    cumulative = 0
    buckets = []
    for le, count in zip(les, list(series.buckets), strict=True):
        cumulative += count
        buckets.append((le, float(cumulative)))
    family.add_metric(labels, buckets, series.sum)
    names = dict(zip(family._labelnames, labels, strict=True))
    family.samples.append(Sample(family.name + "_created", names, series.created))


class CommandMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.commands = _Timings(
            "vigil_commands",
            "Commands handled, by command name and outcome.",
            "vigil_command_duration_seconds",
            "Time to handle a command end to end, by command name and outcome.",
        )
        self.registry.register(self.commands)
        self.append_seconds = _Histogram(
            "vigil_event_append_duration_seconds",
            "Time to append one commit to the event store.",
        )
        self.registry.register(self.append_seconds)
        self.conflicts = Counter(
            "vigil_append_conflicts_total",
            "Appends rejected because the aggregate moved on, by command name.",
            ["command"],
            registry=self.registry,
        )

    def record(self, command: str, outcome: str, seconds: float) -> None:
        """Count one command and its latency."""
        self.commands.record(command, outcome, seconds)
