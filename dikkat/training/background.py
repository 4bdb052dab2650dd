"""Background work at a lower CPU priority, so a retrain takes only what serving leaves over.

Two tools: a thread whose Linux nice value is raised (for work that needs this process's
encoder and feature cache), and a long-lived worker process for training the head, which
otherwise holds the GIL for most of a retrain and slows every request the process serves.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from dikkat.training.sentiment import TrainResult, train_head

__all__ = ["run_at_low_priority", "train_head_in_worker"]

log = logging.getLogger(__name__)

R = TypeVar("R")

_workers: dict[int, ProcessPoolExecutor] = {}
_workers_lock = threading.Lock()


async def run_at_low_priority(fn: Callable[..., R], /, *args, nice: int, **kwargs) -> R:
    """Run `fn(*args, **kwargs)` in a fresh thread whose Linux nice value is raised by `nice`.

    A thread's nice value cannot be lowered again without privileges, so each call gets its own
    thread, which ends with the call. Elsewhere than Linux, or with nice 0, it runs unchanged.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[R] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: R | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def body() -> None:
        _lower_thread_priority(nice)
        try:
            outcome = (context.run(fn, *args, **kwargs), None)
        except BaseException as error:  # handed to the awaiting task, raised there
            outcome = (None, error)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # the loop closed meanwhile (the caller was cancelled and has gone): no one waits

    # not a daemon: like an executor thread, it may finish before the interpreter exits
    threading.Thread(target=body, name=f"low-priority-{fn.__name__}").start()
    return await future


def train_head_in_worker(*args: Any, nice: int = 0, **kwargs: Any) -> TrainResult:
    """`train_head(*args, **kwargs)` in this process's training worker (started on first use).

    The worker is a spawned process at nice `nice` with one torch thread; it shares no GIL with
    the caller and stays up for later retrains. If it cannot start or dies, this call trains
    here instead and the next call starts a fresh worker.
    """
    worker = _worker(nice)
    try:
        return worker.submit(train_head, *args, **kwargs).result()
    except (BrokenProcessPool, OSError) as error:  # OSError: no process or semaphore for it
        with _workers_lock:
            if _workers.get(nice) is worker:
                del _workers[nice]
        log.warning("the training worker process failed (%s); training in this process", error)
        return train_head(*args, **kwargs)


def _worker(nice: int) -> ProcessPoolExecutor:
    with _workers_lock:
        worker = _workers.get(nice)
        if worker is None:
            worker = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),  # fork is unsafe with threads
                initializer=_start_worker,
                initargs=(nice,),
            )
            _workers[nice] = worker
        return worker


def _start_worker(nice: int) -> None:
    import torch

    if nice > 0 and hasattr(os, "nice"):
        os.nice(nice)
    torch.set_num_threads(1)


def _lower_thread_priority(nice: int) -> None:
    if nice <= 0 or not sys.platform.startswith("linux"):
        return  # elsewhere PRIO_PROCESS with a thread id would renice the whole process
    try:
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + nice))
    except OSError as error:
        log.warning("could not lower the retrain thread's priority: %s", error)
