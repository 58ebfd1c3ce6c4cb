"""``PurgeBroadcast``: one purge reaches the in-memory caches of every instance.

Each process keeps its own :class:`~propylon.cache.MemCache`, so a purge done in one
process must be repeated in the others. A ``PurgeBroadcast`` wraps a storage: its
``purge*`` methods apply the purge locally, then publish it on a Redis pub/sub channel;
every other ``PurgeBroadcast`` on the channel applies it to its own storage (a process
ignores its own messages). Messages are JSON: ``{"from": id, "op": "primary" | "tag" |
"prefix", "arg": ..., "ns": ...}``.

Pub/sub delivers to the subscribers connected at that moment only: while Redis or the
subscription is down, purges from other processes are missed (entries still expire by
their TTL). A lost subscription is retried every ``retry_after`` seconds, logging one
warning per outage and one info line when it is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from typing import Optional, Union

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .key import CacheKey
from .storage import Storage

__all__ = ["PurgeBroadcast"]

logger = logging.getLogger("propylon.cache")


class PurgeBroadcast:
    """Purges for ``storage`` shared with the other instances through Redis.

    Args:
        storage: the local storage purges apply to.
        url: Redis URL (used when ``client`` is None).
        client: an existing ``redis.asyncio.Redis`` (not closed by :meth:`aclose`);
            it must not have a socket read timeout shorter than ``poll``.
        channel: the pub/sub channel every instance of one cache shares.
        timeout: seconds a publish may take.
        retry_after: seconds between attempts to subscribe again after a failure.
        poll: seconds one wait for a message lasts (the listener's wake-up period).
    """

    def __init__(self, storage: Storage, *, url: Optional[str] = None, client: Optional[aioredis.Redis] = None,
                 channel: str = "propylon:cache:purge", timeout: float = 0.5, retry_after: float = 1.0,
                 poll: float = 1.0) -> None:
        if client is None and not url:
            raise ValueError("PurgeBroadcast needs url or client")
        self.storage = storage
        self.channel = channel
        self.timeout = timeout
        self.retry_after = retry_after
        self.poll = poll
        self._owns_client = client is None
        self.client = client if client is not None else aioredis.Redis.from_url(url, socket_connect_timeout=timeout)
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.received = 0  # purges applied on behalf of other instances
        self._task: Optional[asyncio.Task] = None
        self._subscribed = asyncio.Event()
        self._down = False

    async def start(self) -> None:
        """Subscribe (waiting up to ``timeout`` for it) and listen in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="cache purge broadcast")
        try:
            async with asyncio.timeout(self.timeout):
                await self._subscribed.wait()
        except TimeoutError:
            pass  # the listener keeps trying; purges made meanwhile are local only

    # --- purges ------------------------------------------------------------------------
    async def purge(self, key: CacheKey) -> bool:
        return await self.purge_primary(key.primary_hash())

    async def purge_primary(self, primary_hash: str) -> bool:
        removed = await self.storage.purge_primary(primary_hash)
        await self._publish("primary", primary_hash)
        return removed

    async def purge_tag(self, tag: Union[bytes, str]) -> int:
        tag_b = tag.encode() if isinstance(tag, str) else tag
        n = await self.storage.purge_tag(tag_b)
        await self._publish("tag", tag_b.decode("latin-1"))
        return n

    async def purge_prefix(self, prefix: str, namespace: Optional[str] = None) -> int:
        n = await self.storage.purge_prefix(prefix, namespace)
        await self._publish("prefix", prefix, namespace)
        return n

    async def _publish(self, op: str, arg: str, ns: Optional[str] = None) -> None:
        message = json.dumps({"from": self.id, "op": op, "arg": arg, "ns": ns})
        try:
            async with asyncio.timeout(self.timeout):
                await self.client.publish(self.channel, message)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("cache: purge %s %r not sent to other instances (%s: %s)", op, arg,
                           type(exc).__name__, exc)

    # --- listening ---------------------------------------------------------------------
    async def _listen(self) -> None:
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if self._down:
                    logger.info("cache: purge broadcast subscribed again to %s", self.channel)
                    self._down = False
                self._subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=self.poll)
                    if message is not None and message.get("type") == "message":
                        await self._apply(message["data"])
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                if not self._down:
                    self._down = True
                    logger.warning("cache: purge broadcast lost its subscription to %s (%s: %s); retrying",
                                   self.channel, type(exc).__name__, exc)
            finally:
                try:
                    await pubsub.aclose()
                except (RedisError, OSError):
                    pass
            await asyncio.sleep(self.retry_after)

    async def _apply(self, data: bytes) -> None:
        try:
            msg = json.loads(data)
            sender, op, arg, ns = msg["from"], msg["op"], msg["arg"], msg.get("ns")
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("cache: ignoring malformed purge message %r (%s)", data[:200], exc)
            return
        if sender == self.id:
            return
        if op == "primary":
            await self.storage.purge_primary(arg)
        elif op == "tag":
            await self.storage.purge_tag(arg.encode("latin-1"))
        elif op == "prefix":
            await self.storage.purge_prefix(arg, ns)
        else:
            logger.warning("cache: ignoring purge message with unknown op %r", op)
            return
        self.received += 1

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._owns_client:
            await self.client.aclose()
