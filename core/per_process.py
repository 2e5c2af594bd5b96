"""One object per process, made again in a forked child.

Celery's prefork pool forks its children from a parent that may already hold a thread, a
Redis subscription or an event loop, and none of those survives a fork: the child would
inherit an object whose thread is gone. `PerProcess(make)()` makes the object on first use
in each process, and `os.register_at_fork` forgets the parent's in the child (its lock
too: the parent may have held it while forking).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    _lock: threading.Lock
    _value: T | None

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._forget()
        os.register_at_fork(after_in_child=self._forget)

    def __call__(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._make()
            return self._value

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._value = None
