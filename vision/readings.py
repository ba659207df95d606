"""How often a face's expression is read: its crop at most every `every_s` seconds per track, carried in
between (`--expression-every SECONDS`, default 0.1), or on every analysed frame (0).

The CNNs that read a face's crop (fer and face-api, about 1.3 ms per face on one core) are most of the
per-frame cost after the landmarker. A researcher who wants the whole command near the landmarker's own
speed may read crops less often: a tracked face's crop is read when its track has none yet or its last one
is `every_s` or more seconds old; otherwise it takes its track's last crop reading. With the fusion heads
(the default classifier) the head still runs on every frame, on the carried crop reading and the frame's own
blendshapes and landmark geometry, so a smile or an open mouth shows at once; with a plain CNN classifier
(or fusion-v1) the last probabilities and label are carried. Box, metrics, head pose, attention and quality
are read on every frame either way, and a face that cannot be landmarked keeps no reading (NaN), as
always. Readings are carried, never interpolated: the result does not depend on frames not yet seen (live
streams too). `scripts/bench_expression_rate.py` measures what it costs against reading every frame.

`ExpressionReadings.classify(classifier, images, observations)` takes a window of tracked observations
in time order and returns them with probs and labels; `reset()` forgets every track's reading.
"""
from __future__ import annotations

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


class ExpressionReadings:
    """update-style stage between the tracker and describe: which faces to classify, and carrying."""

    def __init__(self, every_s: float = 0.0):
        if not every_s >= 0:
            raise ValueError("expression_every_s must be >= 0 seconds")
        self.every_s = every_s
        self.reset()

    def reset(self) -> None:
        self._last: dict[int, tuple[float, np.ndarray, int]] = {}  # track id -> (t, crop reading or probs, label)

    def classify(self, classifier, images: list, observations: list[Observation]) -> list[Observation]:
        if self.every_s == 0:
            return classify_readable(classifier, images, observations)
        masks = self._due(observations)
        read = [_select(o, m) for o, m in zip(observations, masks)]
        if hasattr(classifier, "crop_readings"):  # a fusion head: carry the crop readings, run the head every frame
            fresh = classifier.crop_readings(images, read) if any(len(o) for o in read) else None
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
                return classify_readable(_Done(), images, observations)
            done = classifier.from_crop_readings(np.stack(rows), readable)
            return classify_readable(_Done(done), images, observations)
        done = iter(classifier.classify(images, read))
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

    def _due(self, observations: list[Observation]) -> list[np.ndarray]:
        """Per observation, the faces whose crop is read now: readable, and their track has no reading
        `every_s` seconds old or newer. Decided in time order from the times alone."""
        read_at = {k: t for k, (t, _, _) in self._last.items()}
        masks = []
        for obs in observations:
            mask = obs.readable.copy()
            for i, tid in enumerate(obs.track_ids.tolist()):
                if mask[i] and tid >= 0 and tid in read_at and obs.t - read_at[tid] < self.every_s - 1e-9:
                    mask[i] = False  # carried
                elif mask[i]:
                    read_at[tid] = obs.t
            masks.append(mask)
        return masks


class _Done:
    """A classifier whose answers are already known (the head's, per readable face), for classify_readable."""

    def __init__(self, done: list[Observation] | None = None):
        self.done = done

    def classify(self, images, observations):
        return self.done if self.done is not None else list(observations)
