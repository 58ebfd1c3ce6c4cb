"""Helpers shared by the cache tests: build metas and fill entries through the real API."""

import time

from propylon import ResponseHeader
from propylon.cache import CacheKey, CacheMeta


def meta_for(max_age: float = 60, *fields: tuple[str, str], status: int = 200) -> CacheMeta:
    header = ResponseHeader(status)
    for name, value in fields:
        header.append_header(name, value)
    now = time.time()
    return CacheMeta.new(now + max_age, now, 0, 0, header)


async def fill(storage, key: CacheKey, body: bytes, *fields: tuple[str, str], chunk: int = 16 * 1024) -> None:
    handler = await storage.get_miss_handler(key, meta_for(60, *fields))
    for i in range(0, len(body), chunk):
        await handler.write_body(body[i:i + chunk])
    await handler.finish()


async def read_all(hit) -> bytes:
    return b"".join([c async for c in hit.body])
