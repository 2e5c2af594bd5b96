"""The scheduler leader lock (runs/scheduler_lock.py) against the real Redis: take, renew,
lose, take over, release, and what the admin sees through lock_status()."""

from __future__ import annotations

import redis
from django.utils import timezone

from runs.scheduler_lock import LockStatus, SchedulerLock, lock_key, lock_status
from tests.processes import free_port
from tests.workers.conftest import expire_lock


def held_by(lock_redis: redis.Redis) -> LockStatus:
    status = lock_status(lock_redis)
    assert status is not None, "nobody holds the lock"
    return status


def test_one_process_takes_the_lock_and_the_admin_sees_who_and_since_when(lock_redis: redis.Redis) -> None:
    first, second = SchedulerLock(holder="host-a:1", ttl_s=10), SchedulerLock(holder="host-b:2", ttl_s=10)
    before = timezone.now()

    assert first.acquire()
    assert not second.acquire()

    status = held_by(lock_redis)
    assert status.holder == "host-a:1"
    assert before <= status.acquired_at <= timezone.now()
    assert 0 < status.ttl_s <= 10
    assert first.held and not second.held


def test_no_status_while_nobody_holds_the_lock(lock_redis: redis.Redis) -> None:
    assert lock_status(lock_redis) is None


def test_renewing_resets_the_ttl_and_keeps_the_acquisition_time(lock_redis: redis.Redis) -> None:
    lock = SchedulerLock(holder="host-a:1", ttl_s=10)
    lock.acquire()
    acquired_at = held_by(lock_redis).acquired_at
    lock_redis.pexpire(lock_key(), 200)  # as if the last renewal were long ago

    assert lock.renew()

    status = held_by(lock_redis)
    assert status.ttl_s > 0.2
    assert status.acquired_at == acquired_at


def test_a_holder_whose_lock_expired_loses_it_and_another_takes_over(lock_redis: redis.Redis) -> None:
    old, new = SchedulerLock(holder="host-a:1", ttl_s=10), SchedulerLock(holder="host-b:2", ttl_s=10)
    old.acquire()
    expire_lock(lock_redis)

    assert new.acquire()
    assert not old.renew()  # and its failed renewal leaves the new holder's lock alone

    assert not old.held
    assert held_by(lock_redis).holder == "host-b:2"
    assert new.renew()


def test_a_holder_whose_lock_expired_may_take_it_again_if_free(lock_redis: redis.Redis) -> None:
    lock = SchedulerLock(holder="host-a:1", ttl_s=10)
    lock.acquire()
    expire_lock(lock_redis)

    assert not lock.renew()
    assert lock.acquire()  # nobody else wanted it: it can lead again, with a new acquisition


def test_release_hands_over_at_once(lock_redis: redis.Redis) -> None:
    first, second = SchedulerLock(holder="host-a:1", ttl_s=10), SchedulerLock(holder="host-b:2", ttl_s=10)
    first.acquire()

    first.release()

    assert lock_status(lock_redis) is None
    assert second.acquire()
    first.release()  # no longer held: releasing again touches nothing
    assert held_by(lock_redis).holder == "host-b:2"


def test_with_redis_unreachable_nobody_leads(lock_redis: redis.Redis) -> None:
    down = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    lock = SchedulerLock(holder="host-a:1", ttl_s=10, client=down)

    assert not lock.acquire()
    lock.held = True  # as if Redis went away after we took it
    assert not lock.renew()
    assert not lock.held
