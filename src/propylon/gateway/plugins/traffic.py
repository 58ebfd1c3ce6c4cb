"""Plugins that decide where a route's traffic goes: canary splits.

``TrafficSplit`` sends a share of a route's requests to another cluster. It only
chooses the cluster (``ctx.cluster``); selection, health and retries are that
cluster's own.
"""

from __future__ import annotations

import hashlib
import random

from ..clusters import request_key
from ..config import models as m
from .base import Plugin

__all__ = ["TrafficSplit", "split_bucket"]

#: Shares are decided in steps of 1/10,000 (0.01 %).
BUCKETS = 10_000


def split_bucket(key: bytes) -> int:
    """The bucket in [0, BUCKETS) of a sticky key: the same in every process and
    instance (unlike ``hash()``, which is salted per process)."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % BUCKETS


class TrafficSplit(Plugin):
    """``percent`` of the requests to ``cluster``; by a hash of ``sticky_on`` when given."""

    def __init__(self, conf: m.TrafficSplitPlugin) -> None:
        super().__init__()
        self.cluster = conf.cluster
        self.threshold = round(conf.percent * BUCKETS / 100)
        self.key = request_key(conf.sticky_on) if conf.sticky_on is not None else None
        self._random = random.random

    def canary(self, session) -> bool:
        """Whether this request goes to the split's cluster."""
        if self.key is not None:
            key = self.key(session)
            if key:
                return split_bucket(key) < self.threshold
        return self._random() * BUCKETS < self.threshold

    async def request_filter(self, session, ctx) -> bool:
        if self.canary(session):
            ctx.cluster = ctx.snapshot.clusters[self.cluster]
        return False
