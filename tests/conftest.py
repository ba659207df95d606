"""pytest's hooks for the whole suite: tests marked `shared` are skipped where ../shared is absent. The
builders the tests share are in builders.py (tests/ and scripts/ are on the import path: `pythonpath` in
pyproject.toml)."""
from __future__ import annotations

import pytest

from builders import SHARED


def pytest_collection_modifyitems(config, items):
    if (SHARED / "data").is_dir():
        return
    skip = pytest.mark.skip(reason=f"{SHARED}/data not present (CI has it)")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)
