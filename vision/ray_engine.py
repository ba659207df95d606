"""Analysis jobs on a Ray cluster (`--engine ray`; `pip install -e '.[ray]'`).

The same pure job function as the local pool (`runner.run_job`), run by long-lived Ray actors that
load the models once (`StageCache`) and hand each job's observations back as Arrow tables (numbers and
labels only, never pixels), their viewers' reactions already computed, so the driver only writes and
stores. Ray does the scheduling, transport and retries:

- one actor per CPU of the cluster (or `--workers` at most), each `num_cpus=1`; `ray.util.ActorPool`
  keeps one job in flight per actor, so a node holds the frames of one job per core at most;
- `max_restarts=-1, max_task_retries=-1`: an actor whose process dies (killed, out of memory, node lost)
  is restarted by Ray and its job retried; jobs are pure, so a retry gives the same numbers;
- a node that joins the cluster mid-run gets actors as soon as its CPUs appear in `ray.cluster_resources()`.

Results come back in input order, as from the local pool, so outputs do not depend on the engine.
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
import resource
import time
from typing import Callable, Iterator

import numpy as np

from .errors import RayUnavailable
from .pipeline import SourceReport, Stages, build_stages, job_mode, model_files
from .runner import run_job

GROW_CHECK_S = 1.0  # how often the driver looks for new CPUs while it waits for results


def _ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--engine ray needs the ray package: pip install -e '.[ray]'") from None
    return ray


def to_arrow(cols: dict[str, np.ndarray]):
    import pyarrow as pa

    return pa.table({c: pa.array(v.tolist(), pa.string()) if v.dtype == object else pa.array(v)
                     for c, v in cols.items()})


def from_arrow(table) -> dict[str, np.ndarray]:
    import pyarrow as pa

    return {name: (np.asarray(col.to_pylist(), object) if pa.types.is_string(col.type)
                   else col.to_numpy())
            for name, col in zip(table.column_names, table.columns)}


class StageCache:
    """Stages built once per (settings, mode) and reused by every job of a worker. ONNX sessions, MTCNN and
    the audience front end are stateless between sources (reset per source); a video-mode MediaPipe
    landmarker tracks faces from frame to frame, so it alone is rebuilt for each video."""

    def __init__(self):
        self._stages: dict = {}
        self._unused: set = set()  # stages built and not yet given to a job: nothing to rebuild yet

    def warm(self, settings, mode: str) -> None:
        """Build the stages for (settings, mode) before the first job that needs them arrives."""
        if (settings, mode) not in self._stages:
            self._stages[(settings, mode)] = build_stages(settings, mode, model_files(settings))
            self._unused.add((settings, mode))

    def get(self, settings, mode: str) -> Stages:
        from .landmarker import Landmarker

        self.warm(settings, mode)
        stages = self._stages[(settings, mode)]
        if (settings, mode) in self._unused:
            self._unused.discard((settings, mode))
        elif isinstance(stages.landmarker, Landmarker) and stages.landmarker.options.mode == "video":
            options = stages.landmarker.options
            stages.landmarker.close()
            stages.landmarker = Landmarker(options)
        return stages

    def close(self) -> None:
        for stages in self._stages.values():
            stages.close()
        self._stages.clear()
        self._unused.clear()


class JobWorker:
    """A Ray actor: analyses jobs with models loaded once."""

    def __init__(self):
        for module in ("mediapipe", "onnxruntime"):  # their heavy imports happen while the driver plans, not in
            importlib.import_module(module)           # the first job

        self._cache = StageCache()

    def warm(self, settings, mode: str) -> None:
        """Load the models of the jobs to come while the driver still plans them. A failure here is left for
        the job itself to meet and report."""
        try:
            self._cache.warm(settings, mode)
        except Exception:  # noqa: BLE001 - the job that needs these stages raises the real error
            pass

    def run(self, index: int, specs, settings, boundary: int = -1) -> tuple:
        import ray

        results = run_job(specs, settings, boundary, None, self._cache.get(settings, job_mode(specs)))
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return (index, [(to_arrow(cols), dataclasses.asdict(report)) for cols, report in results],
                ray.get_runtime_context().get_node_id(), peak_mb)


class RayEngine:
    """`run(jobs, settings, on_frame)` on a Ray cluster: `address` of a running one ("auto", "host:port"),
    or None to start one on this machine for the run. After a run: `nodes` (job index -> node id) and
    `peak_rss_mb` (largest worker resident set seen)."""

    def __init__(self, address: str | None = None, workers: int | None = None):
        self.address, self.workers = address, workers
        self.nodes: dict[int, str] = {}
        self.peak_rss_mb = 0.0
        self._actors: list = []

    def connect(self) -> int:
        """Join (or start) the cluster; the number of CPUs it has now."""
        ray = _ray()
        if not ray.is_initialized():
            try:
                kwargs = dict(address=self.address) if self.address else dict(num_cpus=self.workers)
                ray.init(**kwargs, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                         configure_logging=True)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RayUnavailable(f"cannot reach the Ray cluster at {self.address}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}") from None
        if not self._actors:  # started now, they import while the driver plans the jobs
            self._actors = [self._actor_cls().remote() for _ in range(self._wanted(10 ** 6))]
        return self._cpus()

    def warm(self, settings, mode: str) -> None:
        """Have every actor load the models for (settings, mode) now (queued before any job: an actor runs one
        call at a time), so the loading overlaps whatever the driver does before it submits jobs. Returns at
        once."""
        for actor in self._actors:
            actor.warm.remote(settings, mode)

    @staticmethod
    def _actor_cls():
        return _ray().remote(JobWorker).options(num_cpus=1, max_restarts=-1, max_task_retries=-1)

    def _cpus(self) -> int:
        return int(_ray().cluster_resources().get("CPU", 0))

    def _wanted(self, jobs_left: int) -> int:
        return max(1, min(self._cpus(), self.workers or 10 ** 6, jobs_left))

    def run(self, jobs: list, settings, on_frame: Callable[[int, int], None] | None = None) -> Iterator[list]:
        ray = _ray()
        from ray.util.actor_pool import ActorPool

        self.connect()
        actor_cls = self._actor_cls()
        actors, self._actors = self._actors, []
        pool = ActorPool(actors)
        try:
            for i, job in enumerate(jobs):
                pool.submit(lambda actor, item: actor.run.remote(*item),
                            (i, job.specs, job.settings or settings, job.boundary))
            done: dict[int, list] = {}
            next_index, checked = 0, time.monotonic()
            while next_index < len(jobs):
                if time.monotonic() - checked >= GROW_CHECK_S:  # a node joined: give it work
                    checked = time.monotonic()
                    if len(actors) < self._wanted(len(jobs) - next_index - len(done)):
                        actors.append(actor_cls.remote())
                        pool.push(actors[-1])
                finished = []
                try:
                    finished.append(pool.get_next_unordered(timeout=GROW_CHECK_S))
                    while pool.has_next():  # every job done by now, so each idle actor gets its next job
                        finished.append(pool.get_next_unordered(timeout=0))  # before the driver writes anything
                except TimeoutError:
                    if not finished:
                        continue
                for index, tables, node, peak_mb in finished:
                    results = [(from_arrow(table), SourceReport(**report)) for table, report in tables]
                    self.nodes[index] = node
                    self.peak_rss_mb = max(self.peak_rss_mb, peak_mb)
                    if on_frame:
                        on_frame(sum(r.frames_analysed for _, r in results), sum(r.faces for _, r in results))
                    done[index] = results
                while next_index in done:
                    yield done.pop(next_index)
                    next_index += 1
        finally:
            for actor in actors:
                ray.kill(actor)
            ray.shutdown()
