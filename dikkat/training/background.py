"""A retrain's head training in a worker process, so it shares no GIL with the requests served here.

Training the head is most of a retrain and holds the GIL for much of it; in the serving process
that slows every request. The worker is spawned once (at a lower CPU priority, one torch thread)
and stays up for later retrains.
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from dikkat.training.sentiment import TrainResult, train_head

__all__ = ["train_head_in_worker"]

log = logging.getLogger(__name__)

PARENT_CHECK_S = 1.0  # how soon a worker notices that its serving process died

_workers: dict[int, ProcessPoolExecutor] = {}
_workers_lock = threading.Lock()


def train_head_in_worker(*args: Any, nice: int = 0, **kwargs: Any) -> TrainResult:
    """`train_head(*args, **kwargs)` in this process's training worker (started on first use).

    The worker is a spawned process at nice `nice` with one torch thread. If it cannot start or
    dies, this call trains here instead and the next call starts a fresh worker.
    """
    if kwargs.get("init") is not None:
        kwargs["init"] = copy.deepcopy(kwargs["init"]).cpu()  # a CUDA head would pin the GPU there
    worker = _worker(nice)
    try:
        future: Future[TrainResult] = worker.submit(train_head, *args, **kwargs)
    except (BrokenProcessPool, OSError, RuntimeError) as error:  # no process, or shutting down
        return _train_here(nice, worker, error, args, kwargs)
    try:
        return future.result()
    except BrokenProcessPool as error:  # the worker died (killed, or could not import)
        return _train_here(nice, worker, error, args, kwargs)


def _train_here(
    nice: int,
    worker: ProcessPoolExecutor,
    error: BaseException,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> TrainResult:
    with _workers_lock:
        if _workers.get(nice) is worker:
            del _workers[nice]
    worker.shutdown(wait=False, cancel_futures=True)
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

    _exit_with_parent(os.getppid())
    if nice > 0 and hasattr(os, "nice"):
        os.nice(nice)
    torch.set_num_threads(1)


def _exit_with_parent(parent: int) -> None:
    """End this worker when the process that spawned it is gone, even after a SIGKILL."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
