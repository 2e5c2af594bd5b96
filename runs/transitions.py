"""The state machine of runs and steps: every legal move, and who makes it, in one table.

A move is a guarded UPDATE, `… WHERE state IN (its sources)`. Of two processes racing for
one row, one wins and the other learns that another process got there first (a False,
never an error), and a terminal row never moves again. The guarded methods of
runs.models and the hand-written SQL of the hot paths are built from these tables and
from the models' metadata (`SqlNames`): no other code names a state inside SQL.

Adding a state is adding it to runs.choices and its moves here; the partial index on
active runs follows `RUN.active` (makemigrations writes the migration).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import connection, models

from .choices import REASON_DISABLED, RunState, StepState


@dataclass(frozen=True)
class Move:
    sources: frozenset[str]
    target: str
    by: str  # who or what makes the move, and where


class Machine:
    """The moves of one model's `state`, and what follows from them."""

    def __init__(self, states: type[models.TextChoices], moves: Sequence[Move]) -> None:
        self.states = frozenset(states.values)
        self.moves = tuple(moves)
        for move in self.moves:
            assert move.sources | {move.target} <= self.states, move
        self.active = frozenset(source for move in self.moves for source in move.sources)
        self.terminal = self.states - self.active  # no move leaves them
        # Read on every guarded update: computed once.
        self._sources = {
            target: frozenset(source for move in self.moves if move.target == target for source in move.sources)
            for target in {move.target for move in self.moves}
        }

    def sources(self, target: str) -> frozenset[str]:
        """The states a row may move to `target` from."""
        if target not in self._sources:
            raise ValueError(f"no move leads to {target}")
        return self._sources[target]

    def allows(self, source: str, target: str) -> bool:
        return any(source in move.sources and move.target == target for move in self.moves)


def move(*sources: str, to: str, by: str) -> Move:
    return Move(frozenset(sources), to, by)


QUEUED, RUNNING, PENDING = RunState.QUEUED, RunState.RUNNING, StepState.PENDING
RUN = Machine(
    RunState,
    [
        move(QUEUED, to=RUNNING, by="a worker claiming the run's first step (step_started)"),
        move(QUEUED, RUNNING, to=RunState.SUCCEEDED, by="its last step's end; a cancel that stopped nothing"),
        move(QUEUED, RUNNING, to=RunState.FAILED, by="a step's failure; the reaper, for a lost worker"),
        move(QUEUED, RUNNING, to=RunState.CANCELED, by="an operator's cancel (run_cancel), or its step's worker"),
    ],
)
STEP = Machine(
    StepState,
    [
        move(PENDING, to=StepState.RUNNING, by="a worker's claim, while its run is active (StepRun.claim)"),
        move(StepState.RUNNING, to=StepState.SUCCEEDED, by="its worker (step_finish)"),
        move(StepState.RUNNING, to=StepState.FAILED, by="its worker; the reaper, for a lost worker"),
        move(PENDING, StepState.RUNNING, to=StepState.CANCELED, by="a cancel; a failure upstream of it"),
    ],
)


def sql_states(states: Iterable[str]) -> str:
    """`'QUEUED', 'RUNNING'`: states as SQL literals. They are the vocabulary's own values
    (runs.choices), never a user's input: checked to be plain words all the same."""
    values = sorted(states)
    assert all(value.isidentifier() for value in values), values
    return ", ".join(f"'{value}'" for value in values)


class SqlNames:
    """A model's quoted table and column names, for hand-written SQL: `names.table`,
    `names.state` (a field's column), `names.col("run")` (its `run_id`, with the table)."""

    def __init__(self, model: type[models.Model]) -> None:
        self._model = model
        self.table = connection.ops.quote_name(model._meta.db_table)

    def __getattr__(self, field: str) -> str:
        if field.startswith("_"):
            raise AttributeError(field)
        column: str = self._model._meta.get_field(field).column  # type: ignore[union-attr,assignment]
        return connection.ops.quote_name(column)

    def col(self, field: str) -> str:
        return f"{self.table}.{getattr(self, field)}"


def cancel_verdict(steps: Iterable[tuple[str, str]]) -> RunState:
    """The verdict on a canceled run, from its steps' (state, reason): SUCCEEDED when the
    cancel stopped nothing (it arrived as the last step was finishing: every step that was
    to run succeeded, the others were disabled before the run started), CANCELED otherwise.
    An operator reading CANCELED runs the work again, so the state says what the work did."""
    completed = all(
        state == StepState.SUCCEEDED or (state == StepState.CANCELED and reason == REASON_DISABLED)
        for state, reason in steps
    )
    return RunState.SUCCEEDED if completed else RunState.CANCELED
