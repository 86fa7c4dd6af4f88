"""Deadlines as absolute times on one clock, and the seconds left for a backend call."""

from __future__ import annotations

import time

from gateway.errors import DeadlineExceeded

__all__ = ["now", "remaining"]

now = time.monotonic
"""The clock deadlines are measured on (``asyncio``'s default loop clock too)."""


def remaining(deadline: float | None, message: str = "deadline exceeded") -> float | None:
    """Seconds left until ``deadline`` (``None``: no deadline); ``DeadlineExceeded`` with
    ``message`` once it has passed."""
    if deadline is None:
        return None
    left = deadline - now()
    if left <= 0:
        raise DeadlineExceeded(message)
    return left
