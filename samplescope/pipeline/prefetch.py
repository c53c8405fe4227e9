"""Run a producer (encoding inputs) in a background thread while the consumer (the model) works."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order, producing up to ``depth`` of them ahead in another thread.

    Memory is bounded by ``depth`` items. An exception in the producer is raised in
    the consumer at the item where it happened; stopping early (break, an error in the
    consumer, Ctrl-C) stops the producer too.
    """
    if depth < 1:
        raise ValueError(f"depth={depth}; prefetch needs at least 1")
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer and raised there
            put(_Failure(exc))
            return
        put(_DONE)

    worker = threading.Thread(target=produce, name="samplescope-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
