"""How many live-log websockets each user holds open, across every web process.

One Redis sorted set per user, `<REDIS_PREFIX>ws:sockets:<user id>`, in the channel
layer's Redis: one member per open socket (its channel name), scored with the time it
last said it was alive. A socket counts while that time is younger than TTL_S, and its
consumer renews it every REFRESH_S. A daphne that crashes never removes its members, so
they stop counting on their own within TTL_S, and the key expires once nobody renews it.
That healing matters more than exact accounting under races; ranking by last renewal
only makes the later of two sockets racing for the last slot the one refused.
"""

from __future__ import annotations

import time
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

CLOSE_CODE = 4429  # "too many": 4000-4999 are the application's; 429 as in HTTP
REFRESH_S = 20.0  # consumers renew their socket's score this often
TTL_S = 3 * REFRESH_S  # a socket may miss two renewals (a slow Redis) and still count


def close_reason() -> str:
    limit = settings.NOMAFLOW_WS_MAX_PER_USER
    return f"too many live logs open: {limit} per user (NOMAFLOW_WS_MAX_PER_USER); close one and retry"


async def take(user_id: int, socket_id: str) -> bool:
    """Count `socket_id` for the user; False (and not counted) if the user already holds
    NOMAFLOW_WS_MAX_PER_USER sockets."""
    key, now = _key(user_id), time.time()
    async with _redis().pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(key, "-inf", now - TTL_S)
        pipe.zadd(key, {socket_id: now})
        # Rank by last renewal, so of two sockets racing for the last slot the later loses.
        pipe.zrank(key, socket_id)
        pipe.expire(key, int(TTL_S))
        _, _, rank, _ = await pipe.execute()
    if rank < settings.NOMAFLOW_WS_MAX_PER_USER:
        return True
    await release(user_id, socket_id)
    return False


async def renew(user_id: int, socket_id: str) -> None:
    key = _key(user_id)
    async with _redis().pipeline(transaction=True) as pipe:
        pipe.zadd(key, {socket_id: time.time()})
        pipe.expire(key, int(TTL_S))
        await pipe.execute()


async def release(user_id: int, socket_id: str) -> None:
    await _redis().zrem(_key(user_id), socket_id)


def _key(user_id: int) -> str:
    return f"{settings.REDIS_PREFIX}ws:sockets:{user_id}"


def _redis() -> Any:
    """The channel layer's own redis-py asyncio client for the running event loop: its pool
    is already open in every web process, and closed with the loop."""
    return get_channel_layer().connection(0)  # type: ignore[union-attr]
