"""Spread analysis jobs over processes (both cores) and hand results back in input order.

A job is one video or stream, or a run of still images; each is analysed by `analyze_job`, a pure
function of (sources, settings), so the output does not depend on how many workers ran it.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator

from .capture import SourceSpec
from .pipeline import Settings, analyze_job

IMAGES_PER_JOB = 64

_progress_queue = None  # set in worker processes only, by _init_worker


def plan_jobs(specs: list[SourceSpec], images_per_job: int = IMAGES_PER_JOB) -> list[list[SourceSpec]]:
    jobs: list[list[SourceSpec]] = []
    for spec in specs:
        if spec.kind == "image" and jobs and jobs[-1][0].kind == "image" and len(jobs[-1]) < images_per_job:
            jobs[-1].append(spec)
        else:
            jobs.append([spec])
    return jobs


def default_workers(n_jobs: int) -> int:
    return max(1, min(os.cpu_count() or 1, n_jobs))


def _init_worker(q) -> None:
    global _progress_queue
    _progress_queue = q


def _report_to_queue(obs) -> None:
    _progress_queue.put((1, len(obs)))


def _worker(job: list[SourceSpec], settings: Settings):
    return analyze_job(job, settings, _report_to_queue if _progress_queue is not None else None)


def run_jobs(jobs: list[list[SourceSpec]], settings: Settings, workers: int,
             on_frame: Callable[[int, int], None] | None = None) -> Iterator[list]:
    """Yield each job's results, in job order. on_frame(frames, faces) is called as frames complete."""
    if workers <= 1 or len(jobs) <= 1:
        cb = (lambda obs: on_frame(1, len(obs))) if on_frame else None
        for job in jobs:
            yield analyze_job(job, settings, cb)
        return
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    stop = threading.Event()

    def pump():
        while not stop.is_set():
            try:
                frames, faces = q.get(timeout=0.1)
            except queue.Empty:
                continue
            if on_frame:
                on_frame(frames, faces)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(q,)) as pool:
            futures = [pool.submit(_worker, job, settings) for job in jobs]
            for f in futures:
                yield f.result()
    finally:
        stop.set()
        reader.join()
