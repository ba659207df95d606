"""Long videos over several processes: split into overlapping parts, then stitch the track ids.

Segment k > 0 starts `overlap` frames before its boundary so its tracker has warmed up, and sees every
face the previous split saw in that window. After both ran, each new track id is mapped to the old id
whose boxes it overlaps most often in the shared frames (IoU >= 0.5); a track seen only after the
boundary gets the next free id. Rows before the boundary are then dropped from the new split.

The stitched output equals a single-process run in frames, rows and ids except where MediaPipe's own
video tracking state differs right after a split start (landmarks re-detected instead of tracked).
"""
from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np

from .capture import SourceSpec
from .pipeline import SourceReport
from .table import COLUMNS
from .tracker import iou_matrix

MIN_SPLIT_S = 30.0


def split_video(spec: SourceSpec, frames: int, fps: float, parts: int, overlap_s: float,
                min_split_s: float = MIN_SPLIT_S) -> list[tuple[SourceSpec, int]]:
    """(split spec, boundary frame) pairs; one pair (the whole video) when it is too short to split."""
    parts = max(1, min(parts, int(frames / fps // min_split_s) if fps > 0 else 1))
    if parts == 1 or frames <= 0:
        return [(spec, 0)]
    overlap = int(math.ceil(overlap_s * fps))
    bounds = [round(frames * k / parts) for k in range(parts)] + [None]
    return [(dataclasses.replace(spec, start_frame=max(0, b - overlap) if k else 0, end_frame=bounds[k + 1]), b)
            for k, b in enumerate(bounds[:-1])]


def _select(cols: dict, mask: np.ndarray) -> dict:
    return {c: cols[c][mask] for c in COLUMNS}


def stitch(prev: dict, new: dict, boundary: int, next_id: int) -> tuple[dict, int]:
    """Relabel `new` split's track ids to continue `prev`'s, drop its rows before `boundary`.
    Returns (new rows from the boundary on, next free id)."""
    votes: dict[int, Counter] = {}
    shared = np.intersect1d(np.unique(new["frame"][new["frame"] < boundary]), np.unique(prev["frame"]))
    for f in shared.tolist():
        a, b = prev["frame"] == f, new["frame"] == f
        iou = iou_matrix(np.stack([new[k][b] for k in "xywh"], 1), np.stack([prev[k][a] for k in "xywh"], 1))
        for i, j in zip(*np.nonzero(iou >= 0.5)):
            votes.setdefault(int(new["track_id"][b][i]), Counter())[int(prev["track_id"][a][j])] += 1
    mapping, used = {}, set()
    for new_id, counter in sorted(votes.items(), key=lambda kv: -max(kv[1].values())):
        for old_id, _ in counter.most_common():
            if old_id not in used:
                mapping[new_id] = old_id
                used.add(old_id)
                break
    keep = new["frame"] >= boundary
    out = _select(new, keep)
    ids = []
    for t in out["track_id"].tolist():
        if t not in mapping:
            mapping[t] = next_id
            next_id += 1
        ids.append(mapping[t])
    out["track_id"] = np.asarray(ids, np.int64)
    return out, next_id


def merge_splits(parts: list[tuple[dict, SourceReport, int]]) -> tuple[dict, SourceReport]:
    """Merge (columns, report, boundary frame) of consecutive splits of one video, in order."""
    cols, first, _ = parts[0]
    report = dataclasses.replace(first, analysed_t=list(first.analysed_t))
    next_id = int(cols["track_id"].max()) + 1 if len(cols["track_id"]) else 1
    merged = [cols]
    for new_cols, new, boundary in parts[1:]:
        rows, next_id = stitch(merged[-1], new_cols, boundary, next_id)
        merged.append(rows)
        report.analysed_t += [t for t in new.analysed_t if t >= boundary / new.source_fps - 1e-9]
        report.frames_read += max(0, new.frames_read - (boundary - new.start_frame))
        report.stopped_early = report.stopped_early or new.stopped_early
        report.elapsed_s = max(report.elapsed_s, new.elapsed_s)
    out = {c: np.concatenate([m[c] for m in merged]) for c in COLUMNS}
    report.start_frame = 0
    report.frames_analysed = len(report.analysed_t)
    report.faces = len(out["frame"])
    report.tracks = len(np.unique(out["track_id"]))
    return out, report
