"""Opt-in micro-batching of concurrent row-format predict calls.

A :class:`Batcher` sits in front of the backend's predict coroutine
``send(ref, signature_name, arrays, timeout) -> outputs`` and has the same shape, so the
service does not know whether it is batching. Concurrent :meth:`Batcher.submit` calls for
the same model ref and signature whose inputs have the same aliases, dtypes and non-batch
shapes are merged: one ``np.concatenate`` per input along axis 0, one ``send``, and the
outputs are split back by row count in submission order.

Only **row-format** requests may be submitted (``instances``: dim 0 of every input is the
batch). Columnar requests (``inputs``) have no batch dimension the gateway may assume, so
the service must call the backend directly for them; the batcher cannot tell them apart.

Flush policy: a batch is sent when it holds ``max_size`` rows, ``timeout_ms`` after its
first request, or, while fewer than ``eager_inflight`` batches for the same key are in
flight with the backend (default 1: none), at once — and a waiting batch goes as soon as
an in-flight one returns. So a lone request is never held back (concurrency 1 costs
nothing) and under load batches grow to whatever arrived during one backend round trip.
``eager_inflight=0`` gives plain timer/size batching.

Errors: when a merged call fails with a data error (INVALID_ARGUMENT, OUT_OF_RANGE) each
request is re-sent on its own so one bad request fails alone; when it fails with
DEADLINE_EXCEEDED (its timeout is the earliest member deadline), members with time left
are re-sent on their own; any other error fails every member. Per request, a deadline
that passes while queued or in flight raises :class:`~gateway.errors.DeadlineExceeded`,
and a cancelled caller is dropped from its queued batch (or its result discarded)
without affecting the others.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from gateway.deadlines import remaining
from gateway.errors import Code, DeadlineExceeded, GatewayError

__all__ = ["BatchMetrics", "BatchPolicy", "Batcher", "Send"]

Outputs = dict[str, np.ndarray]
Send = Callable[[Any, str, dict[str, np.ndarray], float | None], Awaitable[Outputs]]
PolicyLookup = Callable[[Any, str], "BatchPolicy | None"]

_DATA_ERRORS = frozenset({Code.INVALID_ARGUMENT, Code.OUT_OF_RANGE})
_QUEUED_DEADLINE = "Deadline exceeded while waiting for a batched predict call"


class BatchMetrics(Protocol):
    """What the batcher reports; the gateway's metrics object implements these two."""

    def observe_batch(self, ref: Any, signature_name: str, requests: int, rows: int) -> None:
        """One backend call carrying ``requests`` merged requests, ``rows`` rows in all."""

    def observe_queue_wait(self, ref: Any, signature_name: str, seconds: float) -> None:
        """Time one request spent queued before its batch was sent."""


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """Batch at most ``max_size`` rows, holding the first request at most ``timeout_ms``."""

    max_size: int
    timeout_ms: float

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ValueError(f"batch max size must be >= 1, got {self.max_size}")
        if self.timeout_ms < 0:
            raise ValueError(f"batch timeout must be >= 0 ms, got {self.timeout_ms}")


@dataclass(eq=False, slots=True)
class _Request:
    arrays: dict[str, np.ndarray]
    rows: int
    deadline: float | None
    future: asyncio.Future[Outputs]
    queued_at: float


@dataclass(eq=False, slots=True)
class _Batch:
    key: Hashable
    ref: Any
    signature_name: str
    policy: BatchPolicy
    requests: list[_Request] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.Handle | None = None


class Batcher:
    """Merge concurrent row-format predict calls into one backend call (see module doc).

    ``policy(ref, signature_name)`` may override the default policy per model; returning
    ``None`` (or a policy with ``max_size`` 1) sends that model's requests unbatched.
    """

    def __init__(
        self,
        send: Send,
        *,
        max_size: int,
        timeout_ms: float,
        metrics: BatchMetrics | None = None,
        policy: PolicyLookup | None = None,
        eager_inflight: int = 1,
    ) -> None:
        if eager_inflight < 0:
            raise ValueError(f"eager_inflight must be >= 0, got {eager_inflight}")
        self._send = send
        self._default = BatchPolicy(max_size, timeout_ms)
        self._policy = policy
        self._metrics = metrics
        self._eager_inflight = eager_inflight
        self._open: dict[Hashable, _Batch] = {}
        self._inflight: dict[Hashable, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def policy_for(self, ref: Any, signature_name: str) -> BatchPolicy | None:
        """The policy used for this model and signature (``None``: not batched)."""
        policy = self._default if self._policy is None else self._policy(ref, signature_name)
        return policy if policy is not None and policy.max_size > 1 else None

    async def submit(
        self,
        ref: Any,
        signature_name: str,
        arrays: Mapping[str, np.ndarray],
        deadline: float | None = None,
    ) -> Outputs:
        """Predict ``arrays`` (row format) possibly merged with concurrent calls.

        ``deadline`` is an absolute ``time.monotonic()`` value or ``None``.
        """
        policy = self.policy_for(ref, signature_name)
        rows = _batch_rows(arrays)
        key = None if policy is None or rows is None else _batch_key(ref, signature_name, arrays)
        if key is None or self._closed or rows >= policy.max_size:
            timeout = remaining(deadline, _QUEUED_DEADLINE)
            return await self._send(ref, signature_name, dict(arrays), timeout)
        remaining(deadline, _QUEUED_DEADLINE)  # already expired: fail before queueing
        future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        request = _Request(dict(arrays), rows, deadline, future, time.monotonic())
        self._enqueue(key, ref, signature_name, policy, request)
        return await _wait(request)

    async def aclose(self) -> None:
        """Send every queued batch now and wait for all in-flight calls to finish."""
        self._closed = True
        for batch in list(self._open.values()):
            self._flush(batch)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _enqueue(
        self, key: Hashable, ref: Any, signature_name: str, policy: BatchPolicy,
        request: _Request,
    ) -> None:
        batch = self._open.get(key)
        if batch is not None and batch.rows + request.rows > policy.max_size:
            _drop_abandoned(batch)
            if batch.rows + request.rows > policy.max_size:
                self._flush(batch)
                batch = None
        if batch is None:
            batch = self._open_batch(key, ref, signature_name, policy)
        batch.requests.append(request)
        batch.rows += request.rows
        if batch.rows >= policy.max_size:
            self._flush(batch)

    def _open_batch(
        self, key: Hashable, ref: Any, signature_name: str, policy: BatchPolicy
    ) -> _Batch:
        loop = asyncio.get_running_loop()
        batch = _Batch(key, ref, signature_name, policy)
        if self._inflight.get(key, 0) < self._eager_inflight:
            batch.timer = loop.call_soon(self._flush, batch)
        else:
            batch.timer = loop.call_later(policy.timeout_ms / 1000.0, self._flush, batch)
        self._open[key] = batch
        return batch

    def _flush(self, batch: _Batch) -> None:
        if self._open.get(batch.key) is not batch:
            return
        del self._open[batch.key]
        if batch.timer is not None:
            batch.timer.cancel()
        live = _live_requests(batch.requests)
        if not live:
            return
        self._inflight[batch.key] = self._inflight.get(batch.key, 0) + 1
        task = asyncio.get_running_loop().create_task(self._run(batch, live))
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(batch.key, done))

    def _finished(self, key: Hashable, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        left = self._inflight[key] - 1
        if left:
            self._inflight[key] = left
        else:
            del self._inflight[key]
        waiting = self._open.get(key)
        if waiting is not None and left < self._eager_inflight:
            self._flush(waiting)

    async def _run(self, batch: _Batch, requests: list[_Request]) -> None:
        try:
            self._observe(batch, requests)
            if len(requests) == 1:
                await self._send_alone(batch, requests[0])
            else:
                await self._send_merged(batch, requests)
        finally:
            for request in requests:  # only if this task itself was cancelled
                if not request.future.done():
                    request.future.cancel()

    async def _send_merged(self, batch: _Batch, requests: list[_Request]) -> None:
        try:
            merged = {
                alias: np.concatenate([r.arrays[alias] for r in requests], axis=0)
                for alias in requests[0].arrays
            }
        except (ValueError, TypeError):  # not expected (same key), but never fail others
            await self._send_each(batch, requests)
            return
        try:
            outputs = await self._send(batch.ref, batch.signature_name, merged,
                                       _earliest_timeout(requests))
        except Exception as exc:
            await self._merged_failed(batch, requests, exc)
            return
        parts = _split(outputs, [r.rows for r in requests])
        if parts is None:
            await self._send_each(batch, requests)
            return
        for request, part in zip(requests, parts, strict=True):
            _resolve(request.future, part)

    async def _merged_failed(
        self, batch: _Batch, requests: list[_Request], exc: Exception
    ) -> None:
        code = _error_code(exc)
        if code in _DATA_ERRORS:
            retry = requests
        elif code == Code.DEADLINE_EXCEEDED:
            now = time.monotonic()
            retry = [r for r in requests if r.deadline is None or r.deadline > now]
        else:
            retry = []
        for request in requests:
            if request not in retry:
                _reject(request.future, exc)
        await self._send_each(batch, retry)

    async def _send_each(self, batch: _Batch, requests: list[_Request]) -> None:
        await asyncio.gather(*(self._send_alone(batch, r) for r in requests))

    async def _send_alone(self, batch: _Batch, request: _Request) -> None:
        if request.future.done():
            return
        try:
            outputs = await self._send(batch.ref, batch.signature_name, request.arrays,
                                       remaining(request.deadline, _QUEUED_DEADLINE))
        except Exception as exc:
            _reject(request.future, exc)
        else:
            _resolve(request.future, outputs)

    def _observe(self, batch: _Batch, requests: list[_Request]) -> None:
        if self._metrics is None:
            return
        now = time.monotonic()
        for request in requests:
            self._metrics.observe_queue_wait(batch.ref, batch.signature_name,
                                             now - request.queued_at)
        self._metrics.observe_batch(batch.ref, batch.signature_name, len(requests),
                                    sum(r.rows for r in requests))


async def _wait(request: _Request) -> Outputs:
    if request.deadline is None:
        return await request.future
    try:
        return await asyncio.wait_for(request.future, request.deadline - time.monotonic())
    except TimeoutError:
        if request.future.cancelled():  # our timeout, not an error raised by send
            raise DeadlineExceeded(_QUEUED_DEADLINE) from None
        raise


def _batch_rows(arrays: Mapping[str, np.ndarray]) -> int | None:
    """Rows shared by every input (dim 0), or ``None`` if the request can't be merged."""
    rows = {a.shape[0] if isinstance(a, np.ndarray) and a.ndim else None
            for a in arrays.values()}
    if len(rows) != 1:
        return None
    (count,) = rows
    return count or None


def _batch_key(ref: Any, signature_name: str, arrays: Mapping[str, np.ndarray]) -> Hashable:
    """Requests merge only with the same ref, signature, aliases, dtypes, row shapes."""
    try:
        hash(ref)
    except TypeError:
        return None
    inputs = tuple((alias, a.dtype, a.shape[1:]) for alias, a in sorted(arrays.items()))
    return (ref, signature_name, inputs)


def _drop_abandoned(batch: _Batch) -> None:
    """Forget queued requests whose callers gave up, so their rows free up room."""
    batch.requests = [r for r in batch.requests if not r.future.done()]
    batch.rows = sum(r.rows for r in batch.requests)


def _live_requests(requests: list[_Request]) -> list[_Request]:
    now = time.monotonic()
    live = []
    for request in requests:
        if request.future.done():
            continue
        if request.deadline is not None and request.deadline <= now:
            request.future.set_exception(DeadlineExceeded(_QUEUED_DEADLINE))
        else:
            live.append(request)
    return live


def _split(outputs: Mapping[str, np.ndarray], counts: list[int]) -> list[Outputs] | None:
    """Per-request views of ``outputs``; ``None`` if some output lacks the batch dim."""
    total = sum(counts)
    for array in outputs.values():
        if not isinstance(array, np.ndarray) or array.ndim == 0 or array.shape[0] != total:
            return None
    bounds = np.cumsum([0, *counts]).tolist()
    return [
        {alias: array[start:stop] for alias, array in outputs.items()}
        for start, stop in itertools.pairwise(bounds)
    ]


def _earliest_timeout(requests: list[_Request]) -> float | None:
    deadlines = [r.deadline for r in requests if r.deadline is not None]
    return max(min(deadlines) - time.monotonic(), 0.0) if deadlines else None


def _error_code(exc: BaseException) -> Code | None:
    """gRPC-style code of a ``GatewayError`` or of a ``grpc.RpcError`` (duck-typed)."""
    if isinstance(exc, GatewayError):
        return exc.code
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            value = code().value[0]
            return Code(value)
        except Exception:
            return None
    return None


def _resolve(future: asyncio.Future[Outputs], outputs: Outputs) -> None:
    if not future.done():
        future.set_result(outputs)


def _reject(future: asyncio.Future[Outputs], exc: Exception) -> None:
    if future.done():
        return
    try:
        clone = copy.copy(exc)  # one exception object per waiter: tracebacks stay apart
    except Exception:
        clone = exc
    future.set_exception(clone)
