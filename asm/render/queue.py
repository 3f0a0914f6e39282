"""A task queue that draws from an iterator lazily, with retries put back in front."""

from __future__ import annotations

from collections import deque
from typing import Iterable


class LazyQueue:
    """Tasks handed out in order: retries first, then the next task drawn lazily from ``source``
    (so a huge dataset's jobs are built as workers free up, not all before the first one starts)."""

    def __init__(self, source: Iterable = ()):
        self.front: deque = deque()
        self.source = iter(source)

    def appendleft(self, task) -> None:
        self.front.appendleft(task)

    def popleft(self):
        if self.front:
            return self.front.popleft()
        return next(self.source)

    def __bool__(self) -> bool:
        if self.front:
            return True
        try:
            self.front.append(next(self.source))
        except StopIteration:
            return False
        return True
