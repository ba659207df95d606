"""The describe stage: fill metrics, valence, head pose and attention from what earlier stages found."""
from __future__ import annotations

import numpy as np

from .features import attention, blendshape_metrics, face_quality, head_pose, valence
from .observation import Observation


def describe(obs: Observation) -> Observation:
    return describe_window([obs])[0]


def describe_window(observations: list[Observation]) -> list[Observation]:
    """describe() for several observations with one vectorised pass over all their faces."""
    faces = [o for o in observations if len(o)]
    if not faces:
        return list(observations)
    blend = np.concatenate([o.blendshapes for o in faces])
    matrices = np.concatenate([o.matrices for o in faces])
    metrics, val = blendshape_metrics(blend), valence(np.concatenate([o.probs for o in faces]))
    pose, att = head_pose(matrices), attention(matrices)
    # a face found but not landmarked: present, no reading (NaN), and not looking (attention 0)
    unreadable = ~np.concatenate([o.readable for o in faces])
    metrics[unreadable], val[unreadable], pose[unreadable], att[unreadable] = np.nan, np.nan, np.nan, 0.0
    quality = face_quality(np.concatenate([o.face_px for o in faces]), np.concatenate([o.det_score for o in faces]),
                           np.concatenate([o.presence for o in faces]), pose[:, 0], ~unreadable)
    out, start = [], 0
    for obs in observations:
        if len(obs):
            end = start + len(obs)
            obs = obs.replace(metrics=metrics[start:end].copy(), valence=val[start:end].copy(),
                              pose=pose[start:end].copy(), attention=att[start:end].copy(),
                              quality=quality[start:end].copy())
            start = end
        out.append(obs)
    return out
