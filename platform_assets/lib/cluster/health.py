"""The cluster's health as an operator reads it: which live worker serves which queue, and which
queue no live worker serves (its steps would wait, then fail their runs)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class QueueHealth:
    workers: dict[str, list[str]]  # queue -> the live workers consuming it, sorted
    unserved: list[str]  # the expected queues no live worker consumes

    @property
    def healthy(self) -> bool:
        return not self.unserved

    def summary(self) -> str:
        """One line: every queue with its workers, the unserved ones first."""
        served = "; ".join(f"{q}: {', '.join(w)}" for q, w in sorted(self.workers.items()))
        if self.healthy:
            return f"every queue served ({served})"
        missing = ", ".join(repr(q) for q in self.unserved)
        return f"no live worker serves {missing}; start one with `platform-assets worker --queues ...` ({served or 'no worker answered'})"


def queue_health(answers: Mapping[str, Iterable[str]], expected: Iterable[str]) -> QueueHealth:
    """`answers`: each live worker's name and the queues it consumes (what it answered)."""
    workers: dict[str, list[str]] = {}
    for worker, queues in answers.items():
        for queue in queues:
            workers.setdefault(queue, []).append(worker)
    return QueueHealth(
        {q: sorted(w) for q, w in workers.items()},
        [q for q in expected if q not in workers],
    )
