"""Prometheus metrics, one CollectorRegistry per control plane (no global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._collectors: list[object] = []
        self.requests = Counter("apiserver_request", "Requests by verb, resource and code",
                                ["verb", "group", "resource", "subresource", "code"], registry=self.registry)
        self.latency = Histogram("apiserver_request_duration_seconds", "Request latency",
                                 ["verb", "group", "resource"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.watches = Gauge("apiserver_longrunning_requests", "Open watch streams",
                             ["resource"], registry=self.registry)
        self.revision = Gauge("etcd_current_revision", "The store's current revision",
                              registry=self.registry)

    def add_collector(self, collector: object) -> None:
        """Register a collector read at scrape time (APF's levels), once."""
        if not any(c is collector for c in self._collectors):
            self.registry.register(collector)  # type: ignore[arg-type]
            self._collectors.append(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)
