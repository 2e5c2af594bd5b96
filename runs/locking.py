"""The order in which nomaflow's writes take row locks, and the retry for what no order prevents.

Every transaction that locks more than one row takes its locks in this order:

    1. one run (runs_run, FOR UPDATE): run_cancel, run_replay (the original), a step's
       end (StepRun.finish_and_read_run; the reaper's ends too);
    2. that run's step runs (runs_steprun): a step's finish, the pending steps a cancel
       or a failure ends;
    3. the run's job (jobs_job, FOR UPDATE; runs.job_lock): counting its slots, in a
       trigger, a replay, and the slot hand-over when a run ends (_dispatch_waiting).

Nothing holding a later lock waits for an earlier one. Under the job's lock a transaction
inserts new rows (a trigger's run and steps, whose foreign-key checks lock only the job
and rows it already holds) and takes the waiting runs it dispatches with SKIP LOCKED: a
waiting run someone else holds is being canceled, and its canceller hands the slot on.
Retention locks terminal runs, which nothing else writes, and clears `replay_of` in their
replays, waiting at most for a replay's own holder, who never waits for a terminal run. The
stall resender, a step's claim, its heartbeat and the log flushes change one run or step
per transaction, waiting at most for that row's holder.

Foreign keys lock too, late: PostgreSQL checks them at COMMIT (Django makes them
deferred), taking FOR KEY SHARE of the row referred to, and a transaction that updates a
row twice re-checks that row's keys. So a key may only point at rows its writers already
hold or that come earlier in the order: a step run or a line at its run, a run at its job.
`Run.replay_of` points sideways, at another run, and has no database constraint.

What no order covers (another client's transaction, an admin's query, PostgreSQL picking a
victim among equals) surfaces as a deadlock or serialization failure. `retry_on_conflict`
runs the whole transaction again a few times; its work is lost only with the
transaction, which rolled back, and everything it sends goes out on commit. Past the
last attempt, the API answers 503 (core/api/errors.py): the client may try again.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import OperationalError, connection

from core.errors import conflict_kind

logger = logging.getLogger(__name__)

ATTEMPTS = 4

F = TypeVar("F", bound=Callable[..., Any])


def retry_on_conflict(fn: F) -> F:
    """Call `fn`, which runs its own transaction, again (up to ATTEMPTS in all, after a short
    random pause) when PostgreSQL rolled it back as a deadlock or serialization victim. Inside
    an outer transaction there is nothing to retry: the error goes to its owner."""

    @functools.wraps(fn)
    def attempt(*args: Any, **kwargs: Any) -> Any:
        for tries in range(1, ATTEMPTS + 1):
            try:
                return fn(*args, **kwargs)
            except OperationalError as exc:
                kind = conflict_kind(exc)
                if kind is None or tries == ATTEMPTS or connection.in_atomic_block:
                    raise
                logger.warning("%s: %s, attempt %d of %d; retrying", fn.__name__, kind, tries, ATTEMPTS)
                time.sleep(random.uniform(0, 0.02 * 2**tries))  # the two victims should not meet again
        raise AssertionError("unreachable")

    return attempt  # type: ignore[return-value]
