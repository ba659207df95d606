"""How often a face's expression is read: its crop at most every `every_s` seconds per track, carried in
between (`--expression-every SECONDS`, default 0.1), or on every analysed frame (0).

The CNNs that read a face's crop (fer and face-api, about 1.8 ms per face on one core with the default head,
v6/v7, which read face-api on the crop's mirror image too) are most of the per-frame cost after the landmarker.
A researcher who wants the whole command near the landmarker's own speed may read crops less often: a tracked face's crop is read when its track has none yet or its last one
is `every_s` or more seconds old; otherwise it takes its track's last crop reading. With the fusion heads
(the default classifier) the head still runs on every frame, on the carried crop reading and the frame's own
blendshapes and landmark geometry, so a smile or an open mouth shows at once; with a plain CNN classifier
(or fusion-v1) the last probabilities and label are carried. Box, metrics, head pose, attention and quality
are read on every frame either way, and a face that cannot be landmarked keeps no reading (NaN), as
always. Readings are carried, never interpolated: the result does not depend on frames not yet seen (live
streams too). `scripts/bench_expression_rate.py` measures what it costs against reading every frame.

`ExpressionReadings.take(classifier, image, obs)` decides, frame by frame in time order, which of a tracked
frame's faces are read and cuts their crops while the frame is at hand (a classifier with `cut`; others keep
the frame); `read(classifier, window)` returns the window's observations with probs and labels;
`classify(classifier, images, observations)` does both on a window at once; `reset()` forgets every track's
reading.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .observation import Observation


def _select(obs: Observation, mask: np.ndarray) -> Observation:
    """obs.select(mask), or obs itself where the mask keeps every face (observations are immutable)."""
    return obs if mask.all() else obs.select(mask)


def classify_readable(classifier, images: list, observations: list[Observation]) -> list[Observation]:
    """The classifier on the faces that were landmarked; unreadable faces keep NaN probabilities."""
    if all(o.readable.all() for o in observations):
        return classifier.classify(images, observations)
    readable = [_select(o, o.readable) for o in observations]
    out = []
    for obs, done in zip(observations, classifier.classify(images, readable)):
        probs = np.full((len(obs), done.probs.shape[1]), np.nan, np.float32)
        labels = np.full(len(obs), -1, np.int64)
        probs[obs.readable], labels[obs.readable] = done.probs, done.labels
        out.append(obs.replace(probs=probs, labels=labels))
    return out


@dataclass(frozen=True)
class Pending:
    """One frame's tracked faces waiting for their expressions (`ExpressionReadings.take`): which are read
    now (`due`), and what the classifier needs for that: the due faces' crops, cut while the frame was at
    hand (classifiers that `cut`, the fusion heads), or else the frame itself."""

    obs: Observation
    due: np.ndarray
    crops: object | None = None
    image: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        """Pixels held until the window is read."""
        return sum(a.nbytes for a in (self.crops, self.image) if a is not None)


class ExpressionReadings:
    """update-style stage between the tracker and describe: which faces to classify, and carrying.

    The frame loop calls `take` on each frame as it comes (decides which faces are read and, for a
    classifier that cuts crops, cuts them) and `read` on a window of those; `classify` does both on a
    window of frames at once."""

    def __init__(self, every_s: float = 0.0):
        if not every_s >= 0:
            raise ValueError("expression_every_s must be >= 0 seconds")
        self.every_s = every_s
        self.reset()

    def reset(self) -> None:
        self._last: dict[int, tuple[float, np.ndarray, int]] = {}  # track id -> (t, crop reading or probs, label)
        self._read_at: dict[int, float] = {}  # track id -> when its crop was last read (decided by `take`)

    def classify(self, classifier, images: list, observations: list[Observation]) -> list[Observation]:
        return self.read(classifier, [self.take(classifier, image, obs) for image, obs in zip(images, observations)])

    def take(self, classifier, image, obs: Observation) -> Pending:
        """One tracked frame, in time order: its faces due to be read, and their crops or the frame."""
        due = self._due(obs)
        if hasattr(classifier, "cut"):
            return Pending(obs, due, crops=classifier.cut([image], [_select(obs, due)]) if due.any() else None)
        return Pending(obs, due, image=image)

    def read(self, classifier, window: list[Pending]) -> list[Observation]:
        """The window's observations with probs and labels (taken in time order, read in that order)."""
        observations, masks = [p.obs for p in window], [p.due for p in window]
        if hasattr(classifier, "read_crops"):  # a fusion head: carry the crop readings, run the head every frame
            parts = [p.crops for p in window if p.crops is not None]
            fresh = classifier.read_crops(parts) if parts else None
            rows, k = [], 0
            for obs, mask in zip(observations, masks):
                for i, tid in enumerate(obs.track_ids.tolist()):
                    if mask[i]:
                        self._last[tid] = (obs.t, fresh[k], -1)
                        k += 1
                    if obs.readable[i]:
                        rows.append(self._last[tid][1])
            readable = [_select(o, o.readable) for o in observations]
            if not rows:
                return classify_readable(_Done(), None, observations)
            done = classifier.from_crop_readings(np.stack(rows), readable)
            return classify_readable(_Done(done), None, observations)
        if self.every_s == 0:
            return classify_readable(classifier, [p.image for p in window], observations)
        due = [_select(o, m) for o, m in zip(observations, masks)]
        done = iter(classifier.classify([p.image for p in window], due))
        out = []
        for obs, mask in zip(observations, masks):
            r = next(done)
            probs = np.full(obs.probs.shape, np.nan, np.float32)
            labels = np.full(len(obs), -1, np.int64)
            probs[mask], labels[mask] = r.probs, r.labels
            for i, tid in enumerate(obs.track_ids.tolist()):
                if mask[i]:
                    self._last[tid] = (obs.t, probs[i].copy(), int(labels[i]))
                elif obs.readable[i]:
                    _, probs[i], labels[i] = self._last[tid]
            out.append(obs.replace(probs=probs, labels=labels))
        return out

    def _due(self, obs: Observation) -> np.ndarray:
        """The faces whose crop is read now: readable, and their track has no reading `every_s` seconds old
        or newer (every readable face when `every_s` is 0). Decided in time order from the times alone."""
        mask = obs.readable.copy()
        if self.every_s == 0:
            return mask
        for i, tid in enumerate(obs.track_ids.tolist()):
            if mask[i] and tid >= 0 and tid in self._read_at and obs.t - self._read_at[tid] < self.every_s - 1e-9:
                mask[i] = False  # carried
            elif mask[i]:
                self._read_at[tid] = obs.t
        return mask


class _Done:
    """A classifier whose answers are already known (the head's, per readable face), for classify_readable."""

    def __init__(self, done: list[Observation] | None = None):
        self.done = done

    def classify(self, images, observations):
        return self.done if self.done is not None else list(observations)
