"""What the benchmark and conversion scripts share, written once: the project on the import path, the
`audience` command line as a user runs it, timing, a clip's frames, a counting sink, `audience serve` on a
free loopback port, the synthetic theatre, peak memory, and the converters' checked write.

A script imports it before the project (`import _bench`): scripts/ is on the path when a script runs, and
tests/conftest.py puts it there for the tests.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
AUDIENCE = [sys.executable, "-m", "service.cli"]  # `audience ...`, run by this interpreter on this checkout


def parser(doc: str, **defaults) -> argparse.ArgumentParser:
    """The script's parser, described by its docstring's first line, with an option `--name VALUE` for each
    default given (underscores written as dashes; typed as the default, str where the default is None)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, default in defaults.items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=str if default is None else type(default), default=default)
    return ap


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory so far, MB, of this process (or RUSAGE_CHILDREN: its largest waited-for child)."""
    return resource.getrusage(who).ru_maxrss / 1024


class Stopwatch:
    """`with Stopwatch() as sw: ...`, then `sw.s` (seconds) and `sw.ms`."""

    s = 0.0

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.s = time.perf_counter() - self._t0

    @property
    def ms(self) -> float:
        return self.s * 1000


def analyze(inputs, out: Path, *options: str) -> tuple[float, dict]:
    """`audience analyze INPUTS --out OUT --quiet OPTIONS` as a user runs it: (wall seconds, its summary.json).
    Paths are taken from this process's working folder (the command runs in the project's)."""
    inputs = [os.path.abspath(i) if os.path.exists(i) else str(i) for i in inputs]
    out = Path(out).resolve()
    with Stopwatch() as sw:
        subprocess.run([*AUDIENCE, "analyze", *inputs, "--out", str(out), "--quiet", *options], check=True, cwd=ROOT)
    return sw.s, json.loads((out / "summary.json").read_text())


def read_frames(video) -> tuple[list, float]:
    """Every decodable frame of a video (BGR arrays) and its frame rate (0 where the container has none)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    fps, frames = cap.get(cv2.CAP_PROP_FPS), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames, fps


def write_video(path: Path, frames, fps: float, fourcc: str = "mp4v") -> str:
    """Frames (BGR, one size) into a video file; returns its path as a string."""
    import cv2

    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    for frame in frames:
        out.write(frame)
    out.release()
    return str(path)


class Count:
    """A frame-loop sink that counts analysed frames and faces."""

    def __init__(self):
        self.frames = self.faces = 0

    def write(self, obs) -> None:
        self.frames += 1
        self.faces += len(obs)


def make_audience(labelled_dir, out: Path, seats: int, seconds: float, *options: str) -> Path:
    """The synthetic theatre (scripts/make_audience.py) written into `out`; returns its video."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_audience.py"), str(labelled_dir), "--out", str(out),
                    "--seats", str(seats), "--seconds", str(seconds), *options], check=True, stdout=subprocess.DEVNULL)
    return Path(out) / "audience.avi"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(base: str) -> bool:
    from service.uplink.client import ApiClient
    from vision.errors import Unreachable

    try:
        return ApiClient(base, timeout_s=2).request("GET", "/healthz")[0] == 200
    except Unreachable:  # not up yet
        return False


@dataclass(frozen=True)
class Server:
    port: int  # on 127.0.0.1
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def serving(db: str, root: Path = ROOT, start_timeout_s: float = 30.0) -> Iterator[Server]:
    """`audience serve --db DB` of the checkout `root` in its own process (the client does not share its GIL),
    as in production, on a free loopback port; yields it once /healthz answers and stops it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([*AUDIENCE, "serve", "--db", db, "--port", str(port)], cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + start_timeout_s
        while not _healthy(url):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("server did not start")
            time.sleep(0.05)
        yield Server(port, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def write_checked(path: Path, data: bytes, diff: float, tolerance: float) -> int:
    """A converter's last step: write `data` only when it differs from its reference by at most `tolerance`
    (exit status 1 and one line on stderr otherwise, NaN included); returns the exit status."""
    if not diff <= tolerance:
        print(f"error: the converted model differs from its reference by {diff:.2e} (> {tolerance:g}); nothing "
              "written", file=sys.stderr)
        return 1
    Path(path).write_bytes(data)
    print(f"wrote {path} ({len(data):,} bytes); max difference to the reference {diff:.1e}")
    return 0


def module_at(commit: str, relpath: str, name: str):
    """`relpath` (a module of vision/) as it was at `commit`, imported as `name` beside today's package, for
    benchmarks of an old version against the new in the same run."""
    import importlib.util
    import tempfile

    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{relpath}"], check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(src.replace("from .", "from vision."))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def audience_front_end(detector: str = "centerface+mtcnn", **options):
    """The audience scene's front end (vision.audience) as `audience analyze --scene audience` builds it, on one
    ONNX thread; `options` override AudienceOptions' fields (the box region defaults to the detector's)."""
    from vision.audience import AudienceLandmarker, AudienceOptions, box_roi
    from vision.registry import model_file

    scale, shift = box_roi(detector)
    options = {"box_scale": scale, "box_shift": shift, **options}
    return AudienceLandmarker(AudienceOptions((model_file("face_landmarks").path, model_file("face_blendshapes").path),
                                              tuple(model_file(f"mtcnn_{n}").path for n in ("pnet", "rnet", "onet")),
                                              threads=1, detector=detector, centerface=model_file("centerface").path,
                                              **options))
