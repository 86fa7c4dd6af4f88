"""The micro-batcher: merging, splitting, isolation, deadlines, cancel, flush policy.

The backend is a fake ``send`` coroutine that records each call; assertions are on the
calls it saw and the values each caller got back, never on wall-clock speed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from gateway.batching import Batcher, BatchPolicy
from gateway.errors import BackendUnavailable, DeadlineExceeded, InvalidInput

pytestmark = pytest.mark.timeout(30)

LONG_MS = 60_000.0  # a flush timeout no test waits for
MARKER = -7  # a row holding this value is "bad data" for the fake backend


@dataclass(frozen=True)
class Ref:
    name: str
    version: int | None = None


def transform(array: np.ndarray) -> np.ndarray:
    """What the fake model computes, row by row, for every dtype the tests use."""
    if array.dtype == object:
        return np.vectorize(lambda v: v[::-1], otypes=[object])(array)
    if array.dtype == bool:
        return ~array
    return array * 2 + 1


@dataclass
class FakeBackend:
    """Records calls; answers ``y = transform(x)`` per input plus a per-row sum."""

    calls: list[tuple[Any, str, dict[str, np.ndarray], float | None]] = field(
        default_factory=list
    )
    gate: asyncio.Event | None = None
    error: Exception | None = None
    scalar_output: bool = False
    deadline_below: float | None = None

    async def send(self, ref, signature_name, arrays, timeout):
        self.calls.append((ref, signature_name, arrays, timeout))
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        if None not in (self.deadline_below, timeout) and timeout < self.deadline_below:
            raise DeadlineExceeded("Deadline Exceeded")
        for array in arrays.values():
            if array.dtype.kind in "if" and (array == MARKER).any():
                raise InvalidInput("bad row in batch")
        outputs = {f"{alias}_out": transform(a) for alias, a in arrays.items()}
        if self.scalar_output:
            outputs["count"] = np.array(next(iter(arrays.values())).shape[0])
        return outputs

    def rows_per_call(self) -> list[int]:
        return [next(iter(arrays.values())).shape[0] for _, _, arrays, _ in self.calls]


async def settle() -> None:
    """Let every ready task and callback run a few steps."""
    for _ in range(5):
        await asyncio.sleep(0)


def batcher(backend: FakeBackend, **kwargs: Any) -> Batcher:
    kwargs.setdefault("max_size", 64)
    kwargs.setdefault("timeout_ms", LONG_MS)
    kwargs.setdefault("eager_inflight", 0)
    return Batcher(backend.send, **kwargs)


def make_rows(dtype: str, rows: int, row_shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (rows, *row_shape)
    if dtype == "object":
        flat = [f"s{seed}-{i}".encode() for i in range(int(np.prod(shape)))]
        return np.array(flat, dtype=object).reshape(shape)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype == "int64":
        return rng.integers(-1000, 1000, size=shape, dtype=np.int64)
    return rng.standard_normal(shape).astype(np.float32)


def assert_outputs(got: dict[str, np.ndarray], sent: dict[str, np.ndarray]) -> None:
    assert set(got) >= {f"{alias}_out" for alias in sent}
    for alias, array in sent.items():
        out = got[f"{alias}_out"]
        assert out.dtype == array.dtype
        assert out.shape == array.shape
        np.testing.assert_array_equal(out, transform(array))


@pytest.mark.parametrize("dtype", ["float32", "int64", "object", "bool"])
@pytest.mark.parametrize("row_shape", [(), (3,), (2, 2)])
async def test_merge_and_split_across_dtypes_and_shapes(dtype, row_shape):
    backend = FakeBackend()
    counts = [1, 2, 3]
    b = batcher(backend, max_size=sum(counts))
    inputs = [{"x": make_rows(dtype, n, row_shape, seed=i)} for i, n in enumerate(counts)]
    results = await asyncio.gather(*(b.submit(Ref("m"), "serving_default", a, None)
                                     for a in inputs))
    assert backend.rows_per_call() == [6]
    merged = backend.calls[0][2]["x"]
    np.testing.assert_array_equal(merged, np.concatenate([a["x"] for a in inputs]))
    for got, sent in zip(results, inputs, strict=True):
        assert_outputs(got, sent)


async def test_several_inputs_merge_together_and_split_in_order():
    backend = FakeBackend()
    b = batcher(backend, max_size=10)
    inputs = [
        {"image": make_rows("float32", n, (4,), seed=n), "tag": make_rows("object", n, (), n)}
        for n in (3, 1, 4, 2)
    ]
    results = await asyncio.gather(*(b.submit(Ref("m", 2), "sig", a, None) for a in inputs))
    assert backend.rows_per_call() == [10]
    ref, signature, arrays, _ = backend.calls[0]
    assert (ref, signature, sorted(arrays)) == (Ref("m", 2), "sig", ["image", "tag"])
    for got, sent in zip(results, inputs, strict=True):
        assert_outputs(got, sent)


async def test_many_single_rows_keep_their_order():
    backend = FakeBackend()
    b = batcher(backend, max_size=20)
    inputs = [{"x": np.array([[float(i)]], dtype=np.float32)} for i in range(20)]
    results = await asyncio.gather(*(b.submit(Ref("m"), "s", a, None) for a in inputs))
    assert len(backend.calls) == 1
    np.testing.assert_array_equal(backend.calls[0][2]["x"][:, 0], np.arange(20))
    assert [float(r["x_out"][0, 0]) for r in results] == [2.0 * i + 1 for i in range(20)]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((Ref("m"), "s", {"x": np.zeros((1, 3), np.float32)}),
         (Ref("m"), "s", {"x": np.zeros((1, 4), np.float32)})),
        ((Ref("m"), "s", {"x": np.zeros((1, 3), np.float32)}),
         (Ref("m"), "s", {"x": np.zeros((1, 3), np.float64)})),
        ((Ref("m"), "s", {"x": np.zeros((1, 3), np.float32)}),
         (Ref("m"), "other", {"x": np.zeros((1, 3), np.float32)})),
        ((Ref("m", 1), "s", {"x": np.zeros((1, 3), np.float32)}),
         (Ref("m", 2), "s", {"x": np.zeros((1, 3), np.float32)})),
        ((Ref("m"), "s", {"x": np.zeros((1, 3), np.float32)}),
         (Ref("m"), "s", {"y": np.zeros((1, 3), np.float32)})),
    ],
    ids=["row-shape", "dtype", "signature", "version", "aliases"],
)
async def test_different_keys_are_never_merged(first, second):
    backend = FakeBackend()
    b = batcher(backend, max_size=8)
    pending = [asyncio.ensure_future(b.submit(*first, None)),
               asyncio.ensure_future(b.submit(*second, None))]
    await asyncio.sleep(0)
    await b.aclose()
    results = await asyncio.gather(*pending)
    assert backend.rows_per_call() == [1, 1]
    assert_outputs(results[0], first[2])
    assert_outputs(results[1], second[2])


async def test_bad_request_fails_alone():
    backend = FakeBackend()
    b = batcher(backend, max_size=3)
    good1 = {"x": np.ones((1, 2), np.float32)}
    bad = {"x": np.array([[1.0, MARKER]], np.float32)}
    good2 = {"x": np.full((1, 2), 3.0, np.float32)}
    results = await asyncio.gather(*(b.submit(Ref("m"), "s", a, None)
                                     for a in (good1, bad, good2)), return_exceptions=True)
    assert backend.rows_per_call() == [3, 1, 1, 1]
    assert_outputs(results[0], good1)
    assert isinstance(results[1], InvalidInput)
    assert results[1].message == "bad row in batch"
    assert_outputs(results[2], good2)


async def test_backend_unavailable_fails_every_member_once():
    backend = FakeBackend(error=BackendUnavailable("backend down"))
    b = batcher(backend, max_size=3)
    results = await asyncio.gather(
        *(b.submit(Ref("m"), "s", {"x": np.ones((1, 2), np.float32)}, None) for _ in range(3)),
        return_exceptions=True,
    )
    assert len(backend.calls) == 1
    assert all(isinstance(r, BackendUnavailable) for r in results)
    assert len({id(r) for r in results}) == 3  # each caller gets its own exception object


async def test_outputs_without_batch_dimension_are_fetched_individually():
    backend = FakeBackend(scalar_output=True)
    b = batcher(backend, max_size=5)
    inputs = [{"x": make_rows("float32", n, (2,), seed=n)} for n in (2, 3)]
    results = await asyncio.gather(*(b.submit(Ref("m"), "s", a, None) for a in inputs))
    assert backend.rows_per_call() == [5, 2, 3]
    for got, sent in zip(results, inputs, strict=True):
        assert_outputs(got, sent)
        assert int(got["count"]) == sent["x"].shape[0]


async def test_queued_request_past_its_deadline_fails_and_leaves_the_batch():
    backend = FakeBackend()
    b = batcher(backend, max_size=10)
    doomed = asyncio.ensure_future(
        b.submit(Ref("m"), "s", {"x": np.zeros((1, 2), np.float32)}, time.monotonic() + 0.05)
    )
    with pytest.raises(DeadlineExceeded):
        await asyncio.wait_for(doomed, 10)
    assert backend.calls == []
    survivor = {"x": np.ones((2, 2), np.float32)}
    pending = asyncio.ensure_future(b.submit(Ref("m"), "s", survivor, None))
    await asyncio.sleep(0)
    await b.aclose()
    assert_outputs(await pending, survivor)
    assert backend.rows_per_call() == [2]


async def test_expired_deadline_is_rejected_without_a_backend_call():
    backend = FakeBackend()
    b = batcher(backend, max_size=10)
    with pytest.raises(DeadlineExceeded):
        await b.submit(Ref("m"), "s", {"x": np.zeros((1, 2), np.float32)},
                       time.monotonic() - 1)
    assert backend.calls == []


async def test_cancelled_queued_request_is_dropped_from_its_batch():
    backend = FakeBackend()
    b = batcher(backend, max_size=3)
    first = {"x": np.full((1, 2), 1.0, np.float32)}
    cancelled = asyncio.ensure_future(
        b.submit(Ref("m"), "s", {"x": np.full((1, 2), 2.0, np.float32)}, None))
    kept = asyncio.ensure_future(b.submit(Ref("m"), "s", first, None))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    last = {"x": np.full((2, 2), 3.0, np.float32)}
    results = await asyncio.gather(kept, b.submit(Ref("m"), "s", last, None))
    assert cancelled.cancelled()
    assert len(backend.calls) == 1
    np.testing.assert_array_equal(backend.calls[0][2]["x"][:, 0], [1.0, 3.0, 3.0])
    assert_outputs(results[0], first)
    assert_outputs(results[1], last)


async def test_cancel_while_in_flight_discards_only_that_result():
    backend = FakeBackend(gate=asyncio.Event())
    b = batcher(backend, max_size=2)
    a = asyncio.ensure_future(b.submit(Ref("m"), "s", {"x": np.zeros((1, 1), np.int64)}, None))
    kept = {"x": np.ones((1, 1), np.int64)}
    c = asyncio.ensure_future(b.submit(Ref("m"), "s", kept, None))
    await settle()
    assert backend.rows_per_call() == [2]
    a.cancel()
    backend.gate.set()
    assert_outputs(await c, kept)
    with pytest.raises(asyncio.CancelledError):
        await a


async def test_merged_timeout_is_the_earliest_member_deadline():
    backend = FakeBackend()
    b = batcher(backend, max_size=3)
    now = time.monotonic()
    deadlines = [now + 20, None, now + 8]
    await asyncio.gather(*(b.submit(Ref("m"), "s", {"x": np.ones((1, 1), np.float32)}, d)
                           for d in deadlines))
    (_, _, _, timeout), = backend.calls
    assert timeout is not None and 0 < timeout <= 8


async def test_merged_deadline_failure_retries_members_with_time_left():
    backend = FakeBackend(deadline_below=5.0)  # calls with < 5 s left "time out"
    b = batcher(backend, max_size=2)
    short = {"x": np.ones((1, 1), np.float32)}
    unbounded = {"x": np.full((1, 1), 4.0, np.float32)}
    results = await asyncio.gather(
        b.submit(Ref("m"), "s", short, time.monotonic() + 2),
        b.submit(Ref("m"), "s", unbounded, None),
        return_exceptions=True,
    )
    assert isinstance(results[0], DeadlineExceeded)
    assert_outputs(results[1], unbounded)
    assert backend.rows_per_call() == [2, 1, 1]


async def test_max_size_flushes_full_batches():
    backend = FakeBackend()
    b = batcher(backend, max_size=4)
    await asyncio.gather(*(b.submit(Ref("m"), "s", {"x": np.ones((1, 3), np.float32)}, None)
                           for _ in range(8)))
    assert backend.rows_per_call() == [4, 4]


async def test_request_that_does_not_fit_starts_a_new_batch():
    backend = FakeBackend()
    b = batcher(backend, max_size=4)
    sizes = [3, 2, 2]
    inputs = [{"x": make_rows("int64", n, (1,), seed=n)} for n in sizes]
    results = await asyncio.gather(*(b.submit(Ref("m"), "s", a, None) for a in inputs))
    assert backend.rows_per_call() == [3, 4]
    for got, sent in zip(results, inputs, strict=True):
        assert_outputs(got, sent)


async def test_timeout_flushes_a_partial_batch():
    backend = FakeBackend()
    b = batcher(backend, max_size=100, timeout_ms=20)
    results = await asyncio.wait_for(asyncio.gather(
        *(b.submit(Ref("m"), "s", {"x": np.ones((1, 3), np.float32)}, None) for _ in range(3))
    ), 10)
    assert len(results) == 3
    assert backend.rows_per_call() == [3]


async def test_idle_flush_sends_a_lone_request_without_waiting_for_the_timeout():
    backend = FakeBackend()
    b = batcher(backend, timeout_ms=LONG_MS, eager_inflight=1)
    sent = {"x": np.ones((1, 3), np.float32)}
    assert_outputs(await asyncio.wait_for(b.submit(Ref("m"), "s", sent, None), 10), sent)
    assert backend.rows_per_call() == [1]


async def test_idle_flush_batches_what_arrives_during_a_backend_call():
    backend = FakeBackend(gate=asyncio.Event())
    b = batcher(backend, timeout_ms=LONG_MS, eager_inflight=1)
    first = asyncio.ensure_future(b.submit(Ref("m"), "s", {"x": np.ones((1, 1))}, None))
    await settle()
    rest = [asyncio.ensure_future(b.submit(Ref("m"), "s", {"x": np.ones((1, 1))}, None))
            for _ in range(5)]
    await settle()
    assert backend.rows_per_call() == [1]  # the others wait for the in-flight call
    backend.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *rest), 10)
    assert backend.rows_per_call() == [1, 5]


async def test_eager_inflight_allows_that_many_batches_in_flight():
    backend = FakeBackend(gate=asyncio.Event())
    b = batcher(backend, timeout_ms=LONG_MS, eager_inflight=2)
    rows = {"x": np.ones((1, 2), np.float32)}
    pending = []
    for _ in range(2):
        pending.append(asyncio.ensure_future(b.submit(Ref("m"), "s", rows, None)))
        await settle()
    pending += [asyncio.ensure_future(b.submit(Ref("m"), "s", rows, None)) for _ in range(4)]
    await settle()
    assert backend.rows_per_call() == [1, 1]
    backend.gate.set()
    await asyncio.wait_for(asyncio.gather(*pending), 10)
    assert backend.rows_per_call() == [1, 1, 4]


async def test_unbatchable_requests_go_straight_to_the_backend():
    backend = FakeBackend()
    b = batcher(backend, max_size=4)
    scalar = {"x": np.array(3.0, np.float32)}
    ragged = {"x": np.ones((2, 1), np.float32), "y": np.ones((3, 1), np.float32)}
    big = {"x": np.ones((4, 1), np.float32)}
    for arrays in (scalar, ragged, big):
        assert_outputs(await asyncio.wait_for(b.submit(Ref("m"), "s", arrays, None), 10),
                       arrays)
    assert len(backend.calls) == 3
    assert backend.calls[2][2]["x"] is big["x"]  # sent as is, not copied


async def test_policy_lookup_disables_or_resizes_per_model():
    backend = FakeBackend()
    policies = {"small": BatchPolicy(2, LONG_MS), "off": None}
    b = Batcher(backend.send, max_size=64, timeout_ms=LONG_MS, eager_inflight=0,
                policy=lambda ref, _sig: policies[ref.name])
    assert b.policy_for(Ref("off"), "s") is None
    rows = {"x": np.ones((1, 1), np.float32)}
    await asyncio.wait_for(asyncio.gather(*(b.submit(Ref("off"), "s", rows, None)
                                            for _ in range(2))), 10)
    await asyncio.wait_for(asyncio.gather(*(b.submit(Ref("small"), "s", rows, None)
                                            for _ in range(4))), 10)
    assert backend.rows_per_call() == [1, 1, 2, 2]


class RecordingMetrics:
    def __init__(self) -> None:
        self.batches: list[tuple[Any, str, int, int]] = []
        self.waits: list[float] = []

    def observe_batch(self, ref, signature_name, requests, rows):
        self.batches.append((ref, signature_name, requests, rows))

    def observe_queue_wait(self, ref, signature_name, seconds):
        self.waits.append(seconds)


async def test_metrics_see_batch_sizes_and_queue_waits():
    backend, metrics = FakeBackend(), RecordingMetrics()
    b = batcher(backend, max_size=6, metrics=metrics)
    await asyncio.gather(*(b.submit(Ref("m"), "s", {"x": np.ones((n, 1), np.float32)}, None)
                           for n in (1, 2, 3)))
    assert metrics.batches == [(Ref("m"), "s", 3, 6)]
    assert len(metrics.waits) == 3 and all(w >= 0 for w in metrics.waits)


def test_policy_validation():
    with pytest.raises(ValueError, match="max size"):
        BatchPolicy(0, 5)
    with pytest.raises(ValueError, match="timeout"):
        BatchPolicy(8, -1)
    with pytest.raises(ValueError, match="eager_inflight"):
        Batcher(FakeBackend().send, max_size=8, timeout_ms=1, eager_inflight=-1)
