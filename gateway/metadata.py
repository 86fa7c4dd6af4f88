"""Signatures per servable, from GetModelMetadata, cached with one fetch in flight per key.

The metadata is fetched once per model + version (or label, or "latest") and refreshed when
the answering version changes or the entry ages; the JSON codecs need the signature's
dtypes before a request can be decoded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.deadlines import now
from gateway.pb import get_model_metadata_pb2
from gateway.signatures import Signature, signatures_from_metadata
from gateway.types import ModelRef

__all__ = ["CachedSignatures", "MetadataCache", "entry_from_metadata"]

log = logging.getLogger(__name__)
Fetch = Callable[[ModelRef, float | None],
                 Awaitable[get_model_metadata_pb2.GetModelMetadataResponse]]


@dataclass(slots=True)
class CachedSignatures:
    signatures: dict[str, Signature]
    version: int | None
    fetched: float


class MetadataCache:
    """Signatures per :class:`ModelRef`; one GetModelMetadata in flight per key.

    A pinned version's signatures never change, so its entry lives until evicted; entries
    for "latest" or a label are dropped when a predict is answered by another version and
    refetched after ``ttl`` seconds (while the stale entry keeps serving).
    """

    def __init__(self, fetch: Fetch, ttl: float) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._entries: dict[ModelRef, CachedSignatures] = {}
        self._pending: dict[ModelRef, asyncio.Future[CachedSignatures]] = {}

    async def get(self, ref: ModelRef, deadline: float | None) -> CachedSignatures:
        entry = self._entries.get(ref)
        if entry is not None:
            if ref.version is None and now() - entry.fetched > self._ttl:
                self._refresh_in_background(ref)
            return entry
        return await self._load(ref, deadline)

    def put(self, ref: ModelRef, entry: CachedSignatures) -> None:
        self._entries[ref] = entry

    def peek(self, ref: ModelRef) -> CachedSignatures | None:
        return self._entries.get(ref)

    def note_answer(self, ref: ModelRef, version: int | None) -> None:
        """A predict for ``ref`` was answered by ``version``: drop a stale entry."""
        entry = self._entries.get(ref)
        if entry is not None and version is not None and entry.version != version:
            del self._entries[ref]

    def invalidate(self, name: str) -> None:
        for ref in [r for r in self._entries if r.name == name]:
            del self._entries[ref]

    async def _load(self, ref: ModelRef, deadline: float | None) -> CachedSignatures:
        pending = self._pending.get(ref)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch_entry(ref, deadline))
            self._pending[ref] = pending
            pending.add_done_callback(lambda _f: self._pending.pop(ref, None))
        return await asyncio.shield(pending)

    async def _fetch_entry(self, ref: ModelRef, deadline: float | None) -> CachedSignatures:
        response = await self._fetch(ref, deadline)
        entry = entry_from_metadata(response)
        self._entries[ref] = entry
        return entry

    def _refresh_in_background(self, ref: ModelRef) -> None:
        if ref in self._pending:
            return
        self._entries[ref].fetched = now()  # one refresh per ttl, even if it fails
        task = asyncio.ensure_future(self._load(ref, now() + 10.0))
        task.add_done_callback(_log_refresh_failure)


def _log_refresh_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("metadata refresh failed: %s", task.exception())


def entry_from_metadata(resp: get_model_metadata_pb2.GetModelMetadataResponse) -> CachedSignatures:
    version = resp.model_spec.version.value if resp.model_spec.HasField("version") else None
    return CachedSignatures(signatures_from_metadata(resp), version, now())
