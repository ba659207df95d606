"""The live process's sinks: observations -> per-second batches -> items in the spool.

    SecondBatcher  sink: collects observations; each finished content second -> one batch (columns)
    Timing         sink: when each analysed second's frames were read (wall clock), analysis latency
    Outbox         a batch or a gap -> one spooled item (per-track-second statistics, numbers only)
"""
from __future__ import annotations

import math
import time

from vision.observation import Observation
from vision.reactions import Reactions
from vision.stats import as_lists, track_seconds
from vision.stream import Gap
from vision.table import TableSink

from ..uplink.spool import Spool


def content_second(t: float, offset: float) -> int:
    """The whole second of content time a source time `t` falls in."""
    return math.floor(t - offset + 1e-9)


class SecondBatcher:
    """Sink: collects observations and, when the content second moves on, hands the finished seconds as
    one batch (observation columns with per-viewer reactions, the seconds covered, the largest track id so
    far) to `out.stats(columns, covered, max_id)`. Track ids are shifted by `id_base`, so a restart or a
    gap never reuses an id of the same screening camera."""

    def __init__(self, content_offset: float, out, id_base: int = 0, reactions: Reactions | None = None):
        self.offset, self.out, self.id_base = content_offset, out, id_base
        self.reactions = reactions or Reactions()
        self._table, self._covered, self._second = TableSink(), set(), None
        self.max_id = id_base

    def write(self, obs: Observation) -> None:
        if self.id_base and len(obs):
            ids = obs.track_ids.copy()
            ids[ids >= 0] += self.id_base
            obs = obs.replace(track_ids=ids)
        if len(obs):
            self.max_id = max(self.max_id, int(obs.track_ids.max()))
        second = content_second(obs.t, self.offset)
        if self._second is not None and second > self._second:
            self.flush()
        self._second = second
        self._covered.add(second)
        self._table.write(obs)

    def flush(self) -> None:
        if not self._covered:
            return
        cols = self.reactions.update(self._table.columns())
        self.out.stats(cols, sorted(self._covered), self.max_id)
        self._table, self._covered = TableSink(), set()

    def restart_ids(self) -> None:
        """After a gap the tracker starts again; ids continue above every id used so far."""
        self.id_base = self.max_id


class Timing:
    """Sink beside the batcher: `reading(captured)` is told when the frame in the loop was read
    (time.monotonic); each observation then records the analysis latency and when its second was read."""

    def __init__(self, content_offset: float, metrics):
        self.offset, self.metrics = content_offset, metrics
        self._captured = time.monotonic()
        self._read_at: dict[int, float] = {}  # content second -> wall-clock time its newest frame was read

    def reading(self, captured: float) -> None:
        self._captured = captured

    def write(self, obs: Observation) -> None:
        latency = time.monotonic() - self._captured
        self._read_at[content_second(obs.t, self.offset)] = time.time() - latency
        self.metrics.analysed.inc()
        self.metrics.analysed_latency.observe(latency)

    def read_at(self, covered: list[int]) -> float:
        """When the newest frame of these seconds was read (and forget them); now if unknown."""
        return max((self._read_at.pop(c, 0.0) for c in covered), default=0.0) or time.time()


class Outbox:
    """Batches and gaps -> items in the spool (the sender, woken by `wake`, sends them). `ids_key`: the spool
    meta key that keeps the largest track id, so a restarted stream continues its id space (None: not kept)."""

    def __init__(self, spool: Spool, screening: int, camera: str, content_offset: float, min_quality: float,
                 timing: Timing, metrics, wake, ids_key: str | None = None, writer=None):
        self.spool, self.screening, self.camera, self.offset = spool, screening, camera, content_offset
        self.min_quality, self.timing, self.metrics, self.wake = min_quality, timing, metrics, wake
        self.ids_key, self.writer = ids_key, writer

    def stats(self, cols: dict, covered: list[int], max_id: int) -> None:
        columns = as_lists(track_seconds(cols, self.offset, self.min_quality))  # the spool holds JSON
        self.spool.put("stats", {"screening": self.screening, "camera": self.camera, "columns": columns,
                                 "covered": covered, "captured": self.timing.read_at(covered)})
        if self.ids_key is not None:
            self.spool.set_meta(self.ids_key, max_id)
        if self.writer is not None:
            self.writer.write_columns(cols)
        self.metrics.faces.inc(len(cols["t"]))
        self.wake()

    def gap(self, gap: Gap) -> None:
        self.spool.put("gap", {"screening": self.screening, "camera": self.camera, "start_s": gap.start - self.offset,
                               "end_s": gap.end - self.offset, "reason": gap.reason})
        self.metrics.gap_seconds.inc(gap.end - gap.start)
        self.wake()
