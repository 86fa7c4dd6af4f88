"""Prometheus metrics of one gateway, on its OWN registry (so apps and tests never clash).

Labels stay low-cardinality: ``route`` is a route name (``predict``, ``status``, ...),
``model`` is a model the gateway knows (others are counted as ``_unknown``).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
_BYTES_BUCKETS = tuple(float(4**i) for i in range(3, 14))  # 64 B .. 64 MiB


class Metrics:
    """The gateway's counters and histograms; ``render()`` gives the /metrics body."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tfgw_requests", "HTTP requests answered", ["model", "route", "code"], registry=r
        )
        self.latency = Histogram(
            "tfgw_request_duration_seconds", "HTTP request latency", ["model", "route"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.request_bytes = Histogram(
            "tfgw_request_bytes", "HTTP request body size (after gzip decoding)", ["route"],
            buckets=_BYTES_BUCKETS, registry=r,
        )
        self.response_bytes = Histogram(
            "tfgw_response_bytes", "HTTP response body size (as sent)", ["route"],
            buckets=_BYTES_BUCKETS, registry=r,
        )
        self.in_flight = Gauge("tfgw_requests_in_flight", "HTTP requests in progress",
                               registry=r)
        self.backend_errors = Counter(
            "tfgw_backend_errors", "failed backend gRPC calls", ["method", "code"], registry=r
        )
        self.backend_latency = Histogram(
            "tfgw_backend_duration_seconds", "backend gRPC call latency", ["method"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.metadata_fetches = Counter(
            "tfgw_metadata_fetches", "GetModelMetadata calls made to fill the cache", ["model"],
            registry=r,
        )

        self.batch_requests = Histogram(
            "tfgw_batch_requests", "requests merged into one backend predict call",
            ["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r,
        )
        self.batch_rows = Histogram(
            "tfgw_batch_rows", "rows (instances) in one batched backend predict call",
            ["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=r,
        )
        self.batch_queue_wait = Histogram(
            "tfgw_batch_queue_wait_seconds", "time a request waited to be batched", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        # Label children by label values: bounded (known models × route names × codes).
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._body_children: dict[str, Any] = {}
        self._backend_children: dict[str, Any] = {}

    def observe_batch(self, ref: Any, signature_name: str, requests: int, rows: int) -> None:
        """``gateway.batching.BatchMetrics``: one merged backend call."""
        self.batch_requests.labels(ref.name).observe(requests)
        self.batch_rows.labels(ref.name).observe(rows)

    def observe_queue_wait(self, ref: Any, signature_name: str, seconds: float) -> None:
        """``gateway.batching.BatchMetrics``: one request's wait before its batch left."""
        self.batch_queue_wait.labels(ref.name).observe(seconds)

    def observe_request(
        self, *, model: str, route: str, code: int, seconds: float, in_bytes: int,
        out_bytes: int,
    ) -> None:
        key = (model, route, code)
        children = self._request_children.get(key)
        if children is None:  # ``.labels()`` validates and locks: once per label set
            children = self._request_children[key] = (
                self.requests.labels(model, route, str(code)),
                self.latency.labels(model, route),
                self.response_bytes.labels(route),
            )
        requests, latency, response_bytes = children
        requests.inc()
        latency.observe(seconds)
        if in_bytes:  # no series for body-less routes
            request_bytes = self._body_children.get(route)
            if request_bytes is None:
                request_bytes = self._body_children[route] = self.request_bytes.labels(route)
            request_bytes.observe(in_bytes)
        response_bytes.observe(out_bytes)

    def backend_call(self, method: str) -> Any:
        """The ``tfgw_backend_duration_seconds`` child for ``method`` (cached)."""
        child = self._backend_children.get(method)
        if child is None:
            child = self._backend_children[method] = self.backend_latency.labels(method)
        return child

    def render(self) -> tuple[bytes, str]:
        """Exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
