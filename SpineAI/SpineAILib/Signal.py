"""A minimal signal: how the logic reports to the panel without importing Qt (testable in plain Python)."""

from __future__ import annotations

from collections.abc import Callable


class Signal:
    def __init__(self):
        self._slots: list[Callable] = []

    def connect(self, slot: Callable) -> None:
        self._slots.append(slot)

    def disconnect(self, slot: Callable) -> None:
        self._slots.remove(slot)

    def __call__(self, *args) -> None:
        for slot in list(self._slots):
            slot(*args)
