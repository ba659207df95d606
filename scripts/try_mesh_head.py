"""Measure the v2 head with the whole 478-point landmark mesh (PCA inside each training fold) beside its inputs.

    python scripts/try_mesh_head.py ../shared/data/expressions [--components 20 50] [--workers 2]

Lever 2 of issue 12, kept to reproduce the figure in models/fusion_head_v4.md ("tried"): every photo under
every condition of `expression_data.conditions()` is read once more by MediaPipe for its full mesh
(`expression_data.read_mesh`, cached), normalised to the upright face frame (unit = inter-ocular distance,
x, y, z); inside each subject-disjoint training fold a PCA of the mesh rows gives K components that join the
v2 head's 427 inputs (standardised, the same balanced logistic regression, C and face-api weight). Prints
macro recall 7 / 5 classes at full size, 48 and 32 px, for the v2 head and each K, in the same folds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import expression_data as ed  # noqa: E402
import fusion_v2 as v2  # noqa: E402


class MeshHead(v2.Head):
    """v2's head on [v2 inputs | PCA(mesh)]; k = 0: the v2 head itself."""

    def __init__(self, k: int, n_v2: int):
        super().__init__()
        self.k, self.n_v2 = k, n_v2

    def _project(self, x):
        # the components go first: v2's layout ends with face-api's block and sharpness (fusion_v2.faceapi_block)
        if not self.k:
            return x[:, :self.n_v2]
        return np.concatenate([self.pca.transform(x[:, self.n_v2:]), x[:, :self.n_v2]], 1)

    def fit(self, x, y):
        from sklearn.decomposition import PCA

        self.pca = PCA(self.k, random_state=0).fit(x[:, self.n_v2:]) if self.k else None
        return super().fit(self._project(x), y)

    def logits(self, x):
        return super().logits(self._project(x))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled_dir", type=Path)
    ap.add_argument("--components", type=int, nargs="+", default=[20, 50])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    from joblib import Parallel, delayed

    y, subjects = ed.labels_and_subjects(ed.read_labels(args.labelled_dir))
    readings = ed.read_conditions(args.labelled_dir, ed.DEFAULT_CACHE, workers=args.workers)
    mesh = ed.read_mesh(args.labelled_dir, workers=args.workers)
    x_all = {c: np.concatenate([r.v2_features(), mesh[c]], 1) for c, r in readings.items()}
    n_v2 = readings["full"].v2_features().shape[1]
    split = v2.folds(y, subjects)

    def fold(k, tr, te):
        keep = {c: tr[r.found[tr]] for c, r in readings.items()}
        x = np.concatenate([x_all[c][keep[c]] for c in readings])
        model = MeshHead(k, n_v2).fit(x, y[np.concatenate(list(keep.values()))])
        return {c: model.logits(x_all[c][te]) for c in readings}

    for k in [0] + args.components:
        res = Parallel(n_jobs=args.workers)(delayed(fold)(k, tr, te) for tr, te in split)
        line = []
        for c in ed.EVAL_SIZES:
            lg = np.zeros((len(y), 7))
            for (_, te), r in zip(split, res):
                lg[te] = r[c]
            rep = ed.recall_report(y, np.where(readings[c].found, lg.argmax(1), -1))
            line.append(f"{c} {rep['macro_recall']:.3f}/{rep['macro_recall_5']:.3f}")
        print(f"{'v2 head' if k == 0 else f'v2 + mesh PCA {k}':16s} " + "  ".join(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
