"""The log-latency baseline (bench/logs.py): a minimal ASGI app that relays every message
PUBLISHed on one Redis channel to each websocket client, served by daphne like nomaflow.

    daphne bench.relay_app:application   (REDIS_URL from the environment)
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import redis.asyncio as aioredis

CHANNEL = "bench:relay"


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    client = aioredis.Redis.from_url(os.environ["REDIS_URL"])
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)
    await send({"type": "websocket.accept"})

    async def relay() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                await send({"type": "websocket.send", "text": message["data"].decode()})

    relaying = asyncio.create_task(relay())
    while (await receive())["type"] != "websocket.disconnect":
        pass
    relaying.cancel()
    await pubsub.aclose()
    await client.aclose()
