"""Spread analysis jobs over processes (both cores) and hand results back in input order.

A job is one video or stream, or a run of still images; each is analysed by `run_job`, a pure
function of (sources, settings), so the output does not depend on how many workers ran it, nor on the
engine that ran them: the local process pool here, or a Ray cluster (vision.ray_engine).

Each source's viewers' reactions (vision.reactions: smoothing, baselines, the `<value>_delta` columns) are
computed where its whole timeline is: in the job itself (the worker, so the driver only writes and stores),
or, for the splits of a long video, once they are stitched back together.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

from .capture import SourceSpec, probe_video
from .pipeline import Settings, Stages, analyze_job
from .reactions import Reactions
from .splits import merge_splits, split_video

IMAGES_PER_JOB = 64

_progress_queue = None  # set in worker processes only, by _init_worker


@dataclass(frozen=True)
class Job:
    specs: list[SourceSpec]
    boundary: int = -1  # for a split of a video: its first frame of its own (earlier frames overlap)
    settings: Settings | None = None  # this job's own settings (a batch's recordings differ), else the run's


def plan_jobs(specs: list[SourceSpec], workers: int = 1, overlap_s: float = 2.0,
              images_per_job: int = IMAGES_PER_JOB) -> list[Job]:
    """Runs of still images in jobs of up to `images_per_job`; each video one job, or, when there are
    fewer videos than workers, long videos (>= 2 x 30 s) split into overlapping parts."""
    jobs: list[Job] = []
    videos = sum(1 for s in specs if s.kind == "video")
    for spec in specs:
        if spec.kind == "image" and jobs and jobs[-1].specs[0].kind == "image" and len(jobs[-1].specs) < images_per_job:
            jobs[-1].specs.append(spec)
        elif spec.kind == "video" and 0 < videos < workers:
            frames, fps = probe_video(spec.location)
            parts = split_video(spec, frames, fps, -(-workers // videos), overlap_s)
            jobs.extend(Job([seg], boundary if len(parts) > 1 else -1) for seg, boundary in parts)
        else:
            jobs.append(Job([spec]))
    return jobs


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _init_worker(q) -> None:
    global _progress_queue
    _progress_queue = q


def _report_to_queue(obs) -> None:
    _progress_queue.put((1, len(obs)))


def with_reactions(results: list, settings: Settings) -> list:
    """[(columns, report)] per source -> the same with each source's reactions (its whole timeline)."""
    return [(Reactions(settings.reactions).update(cols), report) for cols, report in results]


def run_job(specs: list[SourceSpec], settings: Settings, boundary: int = -1, progress=None,
            stages: Stages | None = None) -> list:
    """analyze_job, then the reactions of a job that holds whole sources (boundary < 0; a split's are
    computed after stitching, by run_jobs)."""
    results = analyze_job(specs, settings, progress, stages)
    return with_reactions(results, settings) if boundary < 0 else results


def _worker(specs: list[SourceSpec], settings: Settings, boundary: int):
    return run_job(specs, settings, boundary, _report_to_queue if _progress_queue is not None else None)


def run_jobs(jobs: list[Job], settings: Settings, workers: int,
             on_frame: Callable[[int, int], None] | None = None, engine=None) -> Iterator[list]:
    """Yield, in input order, each job's [(columns, report)] per source, reactions computed; splits of one
    video come back stitched into one source. on_frame(frames, faces) is called as frames complete (by a Ray engine, as
    jobs complete). engine: an object with `run(jobs, settings, on_frame)` yielding each job's results in
    input order (vision.ray_engine.RayEngine); None: this machine's process pool of `workers`."""
    run = engine.run(jobs, settings, on_frame) if engine is not None else _run(jobs, settings, workers, on_frame)
    pending: list = []
    for i, results in enumerate(run):
        if jobs[i].boundary < 0:
            yield results
            continue
        pending.append((*results[0], jobs[i].boundary))
        if i + 1 == len(jobs) or jobs[i + 1].boundary <= 0:  # the video's last split
            yield with_reactions([merge_splits(pending)], jobs[i].settings or settings)
            pending = []


def _run(jobs: list[Job], settings: Settings, workers: int, on_frame) -> Iterator[list]:
    if workers <= 1 or len(jobs) <= 1:
        cb = (lambda obs: on_frame(1, len(obs))) if on_frame else None
        for job in jobs:
            yield run_job(job.specs, job.settings or settings, job.boundary, cb)
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
            futures = [pool.submit(_worker, job.specs, job.settings or settings, job.boundary) for job in jobs]
            for f in futures:
                yield f.result()
    finally:
        stop.set()
        reader.join()
