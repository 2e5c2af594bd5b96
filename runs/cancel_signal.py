"""The cancel signal: a Redis PUBLISH that workers running a step of the run listen for.

It is only a fast path. The record of the cancel is `Run.canceled_by` in the database,
which workers also poll with every heartbeat, so a lost signal delays a cancel by one
heartbeat interval and never loses it.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings

logger = logging.getLogger(__name__)


def channel_pattern() -> str:
    return f"{settings.REDIS_PREFIX}nomaflow:cancel:*"


def run_id_from_channel(channel: str) -> str:
    return channel.rsplit(":", 1)[1]


def send_cancel_signal(run_id: str, by: str) -> None:
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        client.publish(f"{settings.REDIS_PREFIX}nomaflow:cancel:{run_id}", by)
    except redis.RedisError as exc:  # the heartbeat poll will find the cancel instead
        logger.warning(
            "cancel signal for run %s not sent (%s); workers will see it on their next heartbeat", run_id, exc
        )
