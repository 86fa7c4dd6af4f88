"""Typed application keys: the state ``create_app`` injects, read by routes/middlewares."""

from __future__ import annotations

from aiohttp import web

from gateway.config import GatewayConfig
from gateway.metrics import Metrics
from gateway.service import Service

__all__ = [
    "BODY_BYTES_KEY",
    "CONFIG_KEY",
    "DEADLINE_KEY",
    "METRICS_KEY",
    "MODEL_KEY",
    "ROUTE_KEY",
    "SERVICE_KEY",
]

CONFIG_KEY = web.AppKey("config", GatewayConfig)
SERVICE_KEY = web.AppKey("service", Service)
METRICS_KEY = web.AppKey("metrics", Metrics)

# Per-request state: set by routes/middlewares, read by the observe middleware.
ROUTE_KEY = web.RequestKey("route", str)
MODEL_KEY = web.RequestKey("model", str)
DEADLINE_KEY = web.RequestKey("deadline", float)
BODY_BYTES_KEY = web.RequestKey("body_bytes", int)
