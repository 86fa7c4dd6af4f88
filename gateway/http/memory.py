"""Keep the gateway's resident memory flat after large requests (glibc malloc only).

A batch-256 predict body is ~1.4 MB of JSON and becomes several MB of short-lived buffers.
glibc raises its mmap threshold dynamically after the first such buffer is freed, so later
ones come from the heap, and the heap rarely shrinks: RSS ratchets up by tens of MB and
stays there. :func:`tune_malloc` pins the threshold (big buffers are mmapped and unmapped
on free) and caps the number of malloc arenas; :class:`Trimmer` calls ``malloc_trim(0)``
shortly after large requests (at most once per interval) to hand back freed heap pages.
Both are best-effort no-ops where glibc is not the allocator.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import time

__all__ = ["LARGE_BODY_BYTES", "Trimmer", "malloc_trim", "tune_malloc"]

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc <malloc.h> mallopt parameter numbers
M_ARENA_MAX = -8
LARGE_BODY_BYTES = 256 * 1024
"""Request bodies at least this big schedule a trim once they have been answered."""

_libc: ctypes.CDLL | bool | None = False  # False: not looked up yet


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is False:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc = libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
        except OSError:
            _libc = None
    return _libc  # type: ignore[return-value]


def tune_malloc(mmap_threshold: int = 128 * 1024, arena_max: int = 2) -> bool:
    """Fix the mmap threshold and cap malloc arenas for this process; ``True`` if applied.

    Meant for the TF-free gateway process only (``tfgw gateway``): a fixed threshold would
    make TensorFlow's large tensors mmap/munmap on every allocation.
    """
    libc = _glibc()
    if libc is None:
        return False
    ok = bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold))
    ok = bool(libc.mallopt(M_ARENA_MAX, arena_max)) and ok
    if not ok:
        log.debug("mallopt refused the gateway's malloc settings")
    return ok


def malloc_trim() -> bool:
    """Return free heap memory to the OS now; ``True`` if some was released."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


class Trimmer:
    """Run :func:`malloc_trim` soon after large requests, at most once per ``interval`` s.

    ``note(body_bytes)`` is called once per answered request; it is a no-op for small
    bodies or when a trim is already scheduled, so the steady-state cost is one compare.
    """

    def __init__(self, interval: float = 1.0, delay: float = 0.05,
                 threshold: int = LARGE_BODY_BYTES) -> None:
        self.interval = interval
        self.delay = delay
        self.threshold = threshold
        self.trims = 0
        self._handle: asyncio.TimerHandle | None = None
        self._last = -float("inf")

    def note(self, body_bytes: int) -> None:
        if body_bytes < self.threshold or self._handle is not None:
            return
        wait = max(self.delay, self._last + self.interval - time.monotonic())
        self._handle = asyncio.get_running_loop().call_later(wait, self._trim)

    def _trim(self) -> None:
        self._handle = None
        self._last = time.monotonic()
        self.trims += 1
        malloc_trim()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
