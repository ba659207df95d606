from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SHARED = Path(os.environ.get("AUDIENCE_SHARED", ROOT.parent / "shared"))
sys.path.insert(0, str(ROOT / "scripts"))


def pytest_collection_modifyitems(config, items):
    if (SHARED / "data").is_dir():
        return
    skip = pytest.mark.skip(reason=f"{SHARED}/data not present (CI has it)")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


def make_observation(n=1, t=0.0, boxes=None, frame=0, source="s", width=640, height=360, **fields):
    """An Observation with n faces; boxes default to non-overlapping squares along a row."""
    from vision.observation import Observation

    if boxes is None:
        boxes = np.array([[0.05 + 0.2 * i, 0.3, 0.1, 0.2] for i in range(n)], np.float32)
    return Observation(source, frame, t, width, height, boxes=np.asarray(boxes, np.float32), **fields)


def run_cli(*args, cwd=None):
    """Run `audience` in a subprocess (so native stderr is captured too)."""
    return subprocess.run([sys.executable, "-m", "service.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=600)


def stat_rows(columns: dict, **fields) -> list[dict]:
    """A per-track-second batch (vision.stats.track_seconds: columns) in the API's row form, a list of
    objects (each with `fields` added, e.g. camera=), for the tests of that form and of row-level tampering."""
    names = list(columns)
    return [{**dict(zip(names, values)), **fields}
            for values in zip(*(np.asarray(columns[k]).tolist() for k in names))]
