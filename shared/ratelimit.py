"""Fixed-window counters in Redis, shared by every API process: failed authentications per client and
submissions per tenant. If Redis cannot be reached the limiter lets requests through (and logs): the job
queue lives on the same Redis, so submissions answer 503 anyway, and reads must not fail for a counter."""

from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger(__name__)


class RateLimiter:
    def __init__(self, redis_url: str, *, timeout_s: float = 0.5) -> None:
        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)

    def exceeded(self, key: str, *, limit: int, window_s: int) -> int | None:
        """Seconds until the window ends if `key` has already used `limit` hits, else None (nothing counted)."""
        count, retry_after = self._read(key, window_s)
        return retry_after if count >= limit else None

    def hit(self, key: str, *, limit: int, window_s: int, amount: int = 1) -> int | None:
        """Count `amount` hits; seconds until the window ends if that went over `limit`, else None."""
        now = time.time()
        bucket = _bucket(key, now, window_s)
        try:
            pipe = self._redis.pipeline()
            pipe.incrby(bucket, amount)
            pipe.expire(bucket, window_s * 2)
            count = int(pipe.execute()[0])
        except redis.RedisError as exc:
            log.warning("rate limiter unavailable, not limiting %s: %s", key.split(":", 1)[0], exc)
            return None
        return _remaining(now, window_s) if count > limit else None

    def _read(self, key: str, window_s: int) -> tuple[int, int]:
        now = time.time()
        try:
            raw = self._redis.get(_bucket(key, now, window_s))
        except redis.RedisError as exc:
            log.warning("rate limiter unavailable: %s", exc)
            return 0, 0
        return (int(raw) if raw else 0), _remaining(now, window_s)


def _bucket(key: str, now: float, window_s: int) -> str:
    return f"medq:rl:{key}:{int(now // window_s)}"


def _remaining(now: float, window_s: int) -> int:
    return max(1, int(window_s - now % window_s))
