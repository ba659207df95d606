"""Every script in scripts/ at least starts: imports resolve and a command's arguments parse (`--help`, exit 0).
The refactors move modules under the scripts' feet; nothing else runs most of them in CI."""
import subprocess
import sys

import pytest

from builders import ROOT

SCRIPTS = sorted(p for p in (ROOT / "scripts").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_starts(script):
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    if '__name__ == "__main__"' in script.read_text():  # a command (the others are modules the scripts share)
        assert "usage" in r.stdout.lower(), r.stdout[:500]
