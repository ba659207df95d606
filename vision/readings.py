"""How often a face's expression is read: every analysed frame (the default), or at most every `every_s`
seconds per track with the last reading carried in between (`--expression-every SECONDS`).

The expression classifiers (both CNNs and the head, about 1.3 ms per face on one core) are most of the
per-frame cost after the landmarker. A researcher who wants the whole command near the landmarker's own
speed may read each viewer's expression less often: a tracked face is classified when its track has no
reading yet or its last one is `every_s` or more seconds old; otherwise it takes its track's last reading
(probabilities and label). Everything else (box, blendshape metrics, head pose, attention, quality) is
still read on every analysed frame, and a face that cannot be landmarked keeps no reading (NaN), as always.
Readings are carried, never interpolated, so the result does not depend on frames not yet seen (live
streams too). What it costs against reading every frame is measured in the README (issue 14).

`ExpressionReadings.classify(classifier, images, observations)` takes a window of tracked observations
in time order and returns them with probs and labels; `reset()` forgets every track's reading.
"""
from __future__ import annotations

import numpy as np

from .observation import Observation


def classify_readable(classifier, images: list, observations: list[Observation]) -> list[Observation]:
    """The classifier on the faces that were landmarked; unreadable faces keep NaN probabilities."""
    if all(o.readable.all() for o in observations):
        return classifier.classify(images, observations)
    readable = [o.select(o.readable) for o in observations]
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
        self._last: dict[int, tuple[float, np.ndarray, int]] = {}  # track id -> (t, probs [7], label)

    def classify(self, classifier, images: list, observations: list[Observation]) -> list[Observation]:
        if self.every_s == 0:
            return classify_readable(classifier, images, observations)
        # which faces are read: decided in time order from the times alone (values come after one batched call)
        read_at = {k: t for k, (t, _, _) in self._last.items()}
        masks = []
        for obs in observations:
            mask = obs.readable.copy()
            for i, tid in enumerate(obs.track_ids.tolist()):
                if not mask[i]:
                    continue
                last = read_at.get(tid)
                if tid >= 0 and last is not None and obs.t - last < self.every_s - 1e-9:
                    mask[i] = False  # carried
                else:
                    read_at[tid] = obs.t
            masks.append(mask)
        done = classifier.classify(images, [o.select(m) for o, m in zip(observations, masks)])
        out = []
        for obs, mask, read in zip(observations, masks, done):
            probs = np.full(obs.probs.shape, np.nan, np.float32)
            labels = np.full(len(obs), -1, np.int64)
            probs[mask], labels[mask] = read.probs, read.labels
            for i, tid in enumerate(obs.track_ids.tolist()):
                if tid < 0:
                    continue
                if mask[i]:
                    self._last[tid] = (obs.t, probs[i].copy(), int(labels[i]))
                elif obs.readable[i] and tid in self._last:
                    _, probs[i], labels[i] = self._last[tid]
            out.append(obs.replace(probs=probs, labels=labels))
        return out
