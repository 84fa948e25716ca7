"""Per-key rate limits shared by every server process on one database.

:class:`DatabaseRateLimiter` keeps a *sliding-window counter*: one row of ``rate_hits`` per key
and one-minute window (``window_index = floor(epoch_s / window_s)``) counts the requests accepted
in it. A request is accepted while

    hits_previous_window * (1 - fraction_of_current_window_elapsed) + hits_current_window + 1 <= limit

i.e. the previous window's count is weighted by how much of it still overlaps the last minute.
Unlike a plain fixed window this does not let a key send twice its limit around a window
boundary, and unlike a log of timestamps it costs one small row per key and minute. The
increment is a single conditional ``UPDATE ... SET hits = hits + 1 WHERE hits < cap`` (plus an
``INSERT`` for a key's first request in a window, retried if another process won that race),
so concurrent servers never accept more than the limit between them. Refused requests are not
counted. Rows older than the previous window are deleted as keys move on.

Why the database and not the in-process limiter by default: a limit that each of N processes
enforces alone lets a key through N times over; the cost here is one short write transaction
per ``/v1`` request (well under a millisecond on local SQLite in WAL mode, one round trip on
PostgreSQL). ``rate_limit_store = "memory"`` keeps the per-process limiter
(:class:`affectlens.service.security.RateLimiter`) for single-process set-ups that want no
database write per request. Windows use the wall clock, so servers on several machines need
synchronised clocks (NTP).

Example:
    >>> limiter = DatabaseRateLimiter(store.engine)
    >>> limiter.check(Principal("lab-ux", 120))     # raises ServiceError(429) when over the limit
"""

from __future__ import annotations

import math
import time

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from affectlens.service.db import rate_hits, transaction
from affectlens.service.security import Principal, ServiceError


class DatabaseRateLimiter:
    """Sliding-window counter per key in the ``rate_hits`` table (see the module docstring).

    Args:
        engine: the service database (its tables already created, e.g. by ``JobStore``).
        window_s: window length in seconds (60: limits are per minute).
    """

    def __init__(self, engine: Engine, window_s: float = 60.0):
        self.engine = engine
        self.window_s = window_s

    def check(self, who: Principal, now: float | None = None) -> None:
        """Count one request of ``who``.

        Args:
            who: the caller and its limit per window (0 or less = unlimited).
            now: wall-clock time in epoch seconds (default: now).

        Raises:
            ServiceError: 429 with ``Retry-After`` (whole seconds) when the key is over its limit.
        """
        limit = who.rate_per_minute
        if limit <= 0:
            return
        now = time.time() if now is None else now
        window = math.floor(now / self.window_s)
        elapsed = now / self.window_s - window  # fraction of the current window, 0..1
        key = rate_hits.c.key_id == who.key_id
        for _ in range(5):  # only a lost race for a window's first row goes round again
            try:
                with transaction(self.engine, write=True) as c:
                    prev = c.execute(select(rate_hits.c.hits).where(key, rate_hits.c.window_index == window - 1)
                                     ).scalar() or 0
                    cap = math.floor(limit - prev * (1.0 - elapsed) + 1e-9)  # hits this window may hold
                    if cap >= 1 and c.execute(update(rate_hits).where(
                            key, rate_hits.c.window_index == window, rate_hits.c.hits < cap)
                            .values(hits=rate_hits.c.hits + 1)).rowcount == 1:
                        return
                    hits = c.execute(select(rate_hits.c.hits).where(key, rate_hits.c.window_index == window)
                                     ).scalar()
                    if hits is None and cap >= 1:
                        c.execute(insert(rate_hits).values(key_id=who.key_id, window_index=window, hits=1))
                        c.execute(delete(rate_hits).where(key, rate_hits.c.window_index < window - 1))
                        return
            except IntegrityError:
                continue  # another process inserted this window's row first: count again
            raise self._refusal(who, prev, hits or 0, window, now)
        raise ServiceError(503, "overloaded", "rate limiter busy; retry shortly", headers={"Retry-After": "1"})

    def _refusal(self, who: Principal, prev: int, hits: int, window: int, now: float) -> ServiceError:
        limit, w = who.rate_per_minute, self.window_s
        if hits + 1 <= limit and prev > 0:  # wait for the previous window's weight to fade enough
            ready = (window + 1.0 - (limit - hits - 1) / prev) * w
        else:  # wait for the next window, where this window's hits weigh in as the previous ones
            ready = (window + 1 + (max(0.0, 1.0 - (limit - 1) / hits) if hits else 0.0)) * w
        retry = max(1, math.ceil(ready - now - 1e-9))
        return ServiceError(429, "rate_limited",
                            f"rate limit of {limit} requests per minute reached for key {who.key_id!r}; "
                            f"retry in {retry} s", headers={"Retry-After": str(retry)})
