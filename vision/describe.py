"""The describe stage: fill metrics, valence, head pose and attention from what earlier stages found."""
from __future__ import annotations

from .features import attention, blendshape_metrics, head_pose, valence
from .observation import Observation


def describe(obs: Observation) -> Observation:
    if len(obs) == 0:
        return obs
    return obs.replace(metrics=blendshape_metrics(obs.blendshapes), valence=valence(obs.probs),
                       pose=head_pose(obs.matrices), attention=attention(obs.matrices))
