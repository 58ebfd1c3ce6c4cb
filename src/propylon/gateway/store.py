"""Several gateway instances sharing one configuration through Redis (``config_store``).

Each configuration an instance applies (from its file, SIGHUP, the admin API) is
written to the store's key and its digest published on the key's channel. Every
instance listens on that channel and, when the stored routes, clusters and plugins
differ from what it runs, applies them like any other change and writes them into its
own file (keeping its comments), so the file stays the source of truth on every
machine. What belongs to one instance — ``listeners``, ``admin``, ``server``,
``metrics``, ``access_log`` and ``config_store`` — is never taken from the store.

Redis going away changes nothing that is serving: the instance keeps its current
configuration, logs one warning, and tries again every second. When Redis is back it
catches up: a change applied here during the outage is published (the last writer
wins), otherwise the stored one is applied; an empty store is seeded with the running
configuration only if no peer has written one first.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Optional

import yaml

from ..shutdown import ShutdownWatch
from .config.models import ConfigStoreConf
from .state import digest_of, write_atomically

if TYPE_CHECKING:
    from .runtime import Gateway

__all__ = ["RedisConfigStore", "FROM_STORE"]

log = logging.getLogger("propylon.gateway.store")

#: The ``who`` of changes that came from the store (they are not published again).
FROM_STORE = "config store"
RETRY = 1.0
#: Sections each instance keeps as its own file says.
LOCAL = ("listeners", "admin", "server", "metrics", "access_log", "config_store")


def _split(text: str) -> tuple[dict, dict]:
    """(the instance's own sections, the shared ones) of a gateway file's text."""
    data: Any = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        return {}, {}
    return ({k: v for k, v in data.items() if k in LOCAL}, {k: v for k, v in data.items() if k not in LOCAL})


class RedisConfigStore:
    """The background loop of one instance (see the module docstring)."""

    def __init__(self, gateway: "Gateway", conf: ConfigStoreConf) -> None:
        self.gateway = gateway
        self.url = conf.redis
        self.key = conf.key
        self.channel = conf.key + ":applied"
        self._client = None
        self._pending: Optional[str] = None  # applied here while Redis was away
        self._down = False

    def applied(self, text: str, who: str) -> None:
        """Called by the gateway after each apply: publish what did not come from the store."""
        if who != FROM_STORE:
            self._pending = text
            if self._client is not None:
                asyncio.ensure_future(self._publish_pending())

    async def _publish_pending(self) -> None:
        text, client = self._pending, self._client
        if text is None or client is None:
            return
        try:
            await client.set(self.key, text)
            await client.publish(self.channel, digest_of(text))
        except Exception as e:  # Redis away: published when it returns
            self._lost(e)
            return
        if self._pending is text:
            self._pending = None

    def _lost(self, e: BaseException) -> None:
        if not self._down:
            self._down = True
            log.warning("config store %s unreachable (%s); serving version %d, catching up when it returns",
                        self.url, e, self.gateway.current.version)

    async def _catch_up(self) -> None:
        if self._pending is not None:
            await self._publish_pending()
            return
        client = self._client
        stored = await client.get(self.key)  # type: ignore[union-attr]
        if stored is None:
            # An empty store (new, or Redis restarted without its data) is seeded with
            # what runs here — but only if no other instance got there first: a peer that
            # changed its configuration during the outage publishes unconditionally, and
            # its change must not be overwritten by this instance's older one.
            text = self.gateway.text
            if await client.set(self.key, text, nx=True):  # type: ignore[union-attr]
                await client.publish(self.channel, digest_of(text))  # type: ignore[union-attr]
                return
            stored = await client.get(self.key)  # type: ignore[union-attr]
            if stored is None:
                return
        from .admin import merge_document

        own = self.gateway.text
        try:
            _, shared = _split(stored.decode("utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as e:
            log.error("the configuration in the store is not a gateway file (%s); ignored", e)
            return
        local, current = _split(own)
        if shared == current:
            return
        text = merge_document(own, {**local, **shared})
        problems = await self.gateway.reload(text=text, who=FROM_STORE)
        if problems:
            log.error("the configuration in the store is refused here; still serving version %d",
                      self.gateway.current.version)
            return
        await asyncio.to_thread(write_atomically, self.gateway.path, text)

    async def run(self, shutdown: ShutdownWatch) -> None:
        import redis.asyncio as aioredis

        while not shutdown.triggered:
            client = aioredis.from_url(self.url, socket_connect_timeout=1)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self._client = client
                await self._catch_up()
                if self._down:
                    self._down = False
                    log.warning("config store %s reachable again; serving version %d",
                                self.url, self.gateway.current.version)
                while not shutdown.triggered:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        await self._catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # Redis down or gone: keep serving, retry
                self._lost(e)
            finally:
                self._client = None
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except Exception:
                    pass
            if not shutdown.triggered:
                try:
                    await asyncio.wait_for(shutdown.wait(), RETRY)
                except asyncio.TimeoutError:
                    pass
