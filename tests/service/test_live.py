"""`audience live` under faults, for real: an API process killed and restarted mid-screening, a camera
(MJPEG over HTTP) cut and restored, a restart that resumes from the spool. Afterwards the stored curve
must equal the offline computation on the same analysed frames: nothing lost, nothing counted twice."""
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import cv2
import httpx
import numpy as np
import pandas as pd
import pytest

from builders import FIXTURES, ROOT, SHARED, run_cli
from vision.curves import BucketStats

VIDEO = SHARED / "data" / "video" / "WolfgangLanger_Pexels.mp4"
METRICS = ["p_happiness", "p_neutral", "valence", "smile", "attention"]



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """`audience serve` as its own process, which the test can kill (SIGKILL) and start again."""

    def __init__(self, db: str):
        self.db, self.port, self.proc = db, free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "Api":
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--db", self.db, "--port",
                                      str(self.port), "--min-audience", "1"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("API did not start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def screening(self) -> tuple[int, int]:
        content = httpx.post(self.url + "/api/v1/contents", json={"title": "clip", "duration_s": 60}).json()
        s = httpx.post(self.url + "/api/v1/screenings", json={"content_id": content["id"]}).json()
        return content["id"], s["id"]

    def curve(self, cid: int) -> dict:
        return httpx.get(f"{self.url}/api/v1/contents/{cid}/curves", params={"metrics": ",".join(METRICS)}).json()


class Live:
    """`audience live` as a subprocess; its stderr lines are collected as they come."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "live", *map(str, args)], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)
        self._reader.start()

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None or any(text in line for line in self.lines), "".join(self.lines)
            assert time.monotonic() < deadline, f"no {text!r} in: {''.join(self.lines)}"
            time.sleep(0.05)

    def finish(self, timeout: float = 180) -> dict:
        self.proc.wait(timeout=timeout)  # stderr is the reader thread's alone (communicate would take lines)
        out = self.proc.stdout.read()
        self._reader.join(timeout=5)
        assert self.proc.returncode == 0, "".join(self.lines)
        return json.loads(out.strip().splitlines()[-1])


def assert_curve_equals(got: dict, want: pd.DataFrame | dict) -> None:
    """The service's curve against the offline one on the seconds with faces (n, mean and CI)."""
    want = pd.DataFrame(want)
    want = want[want["n_faces"] > 0]
    n = np.array(got["n"])
    t = np.array(got["t"])[n > 0]
    assert t.tolist() == want["t"].tolist()
    assert n[n > 0].tolist() == want["n_faces"].tolist()
    for m in METRICS:
        mean = np.array(got["mean"][m], dtype=float)[n > 0]
        ci = np.array([np.nan if v is None else v for v in got["ci95"][m]], dtype=float)[n > 0]
        assert np.allclose(mean, want[m], atol=1e-5), m
        assert np.allclose(ci, want[f"{m}_ci95"], atol=1e-5, equal_nan=True), m


@pytest.mark.shared
def test_live_file_through_an_api_outage_and_a_restart_equals_offline_analyze(tmp_path):
    api = Api(f"sqlite:///{tmp_path / 'service.db'}").start()
    cid, sid = api.screening()
    spool = tmp_path / "cam.spool.db"
    args = ["--source", VIDEO, "--screening", sid, "--content", cid, "--api", api.url, "--fps", 2,
            "--spool", spool, "--camera", "cam1", "--metrics-port", -1]
    try:
        # 1. the API dies as soon as live analysis has started, and comes back while it is still sending
        live = Live(*args, "--flush-timeout", 120)
        live.wait_for("-> screening")
        api.kill()
        time.sleep(3)
        api.start()
        first = live.finish()
        assert first["send_errors"] >= 1 and first["spool_left"] == 0 and first["frames_dropped"] == 0
        offline = run_cli("analyze", VIDEO, "--fps", 2, "--out", tmp_path / "offline", "--scene", first["scene"])
        assert offline.returncode == 0, offline.stderr
        want = pd.read_csv(tmp_path / "offline" / "curves.csv")
        stored = api.curve(cid)
        assert_curve_equals(stored, want)
        # seconds analysed without a face are n = 0 in both
        assert sorted(np.array(stored["t"])[np.array(stored["n"]) == 0]) == want["t"][want["n_faces"] == 0].tolist()

        # 2. API down for a whole run: everything waits in the spool; the next start sends it, and
        #    the re-analysed file's rows are recognised as already stored
        api.kill()
        down = Live(*args, "--flush-timeout", 1)
        second = down.finish()
        assert second["spool_left"] > 0 and any("wait in" in line for line in down.lines)
        api.start()
        third = Live(*args, "--flush-timeout", 120).finish()
        assert third["spool_left"] == 0 and third["refused"] == 0
        assert api.curve(cid) == stored  # nothing counted twice
    finally:
        if api.proc.poll() is None:
            api.proc.terminate()
            api.proc.wait(timeout=10)


@pytest.mark.shared
def test_live_camera_cut_and_api_restart_lose_nothing(tmp_path):
    cap = cv2.VideoCapture(str(VIDEO))
    frames = []
    while len(frames) < 200:  # every other frame: a 12 fps camera for 16.7 s
        ok, frame = cap.read()
        if not ok:
            break
        if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) % 2:
            frames.append(frame)
    api = Api(f"sqlite:///{tmp_path / 'service.db'}").start()
    cid, sid = api.screening()
    port = free_port()
    with __import__("mjpeg_server").CameraServer(frames, fps=12) as camera:
        camera.start()
        live = Live("--source", camera.url, "--screening", sid, "--api", api.url, "--fps", 2, "--camera", "hall",
                    "--spool", tmp_path / "hall.spool.db", "--out", tmp_path / "live", "--metrics-port", port,
                    "--flush-timeout", 120, "--scene", "single")
        try:
            live.wait_for("-> screening")
            time.sleep(3)
            api.kill()  # the service dies mid-screening ...
            time.sleep(1)
            camera.cut()  # ... and the camera drops while it is down
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            time.sleep(3)
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            camera.restore()
            time.sleep(1)
            api.start()
            while time.monotonic() - camera.started < camera.duration + 1:
                time.sleep(0.2)
            live.proc.send_signal(signal.SIGTERM)  # the screening ends
            summary = live.finish()
            sources = httpx.get(f"{api.url}/api/v1/screenings/{sid}/sources").json()
            gaps = httpx.get(f"{api.url}/api/v1/screenings/{sid}/gaps").json()
            stored = api.curve(cid)
        finally:
            if api.proc.poll() is None:
                api.proc.terminate()
                api.proc.wait(timeout=10)
            if live.proc.poll() is None:
                live.proc.kill()
    assert health.json()["status"] in ("ok", "degraded")
    assert "audience_live_frames_analysed_total" in metrics and "audience_live_spool_depth" in metrics
    assert summary["reconnects"] >= 1 and summary["send_errors"] >= 1 and summary["spool_left"] == 0
    assert summary["frames_analysed"] >= 15, (summary, live.lines)
    # the cut is a gap of about its length, and no second inside it is in the curve (missing, not zero)
    assert len(gaps) >= 1 and all(g["camera"] == "hall" for g in gaps)
    longest = max(gaps, key=lambda g: g["end_s"] - g["start_s"])
    assert 2.0 <= longest["end_s"] - longest["start_s"] <= 8.0, gaps
    inside = [t for t in stored["t"] if longest["start_s"] + 1 <= t < longest["end_s"] - 1]
    assert inside == [], (inside, longest)
    assert [s["state"] for s in sources] == ["stopped"]
    # nothing lost, nothing counted twice: the stored curve is the offline curve of the analysed frames
    obs = pd.read_parquet(tmp_path / "live" / "observations.parquet")
    stats = BucketStats(1.0, 0.0)
    stats.add_rows({c: obs[c].to_numpy() for c in obs.columns})
    stats.add_frames(obs["t"].to_numpy())
    assert_curve_equals(stored, stats.curves())
    track_seconds = {(int(np.floor(t + 1e-9)), k) for t, k in zip(obs["t"], obs["track_id"])}
    assert sum(stored["n"]) == len(track_seconds) > 0


def test_live_into_a_database_equals_analyze_and_errors_are_one_line(tmp_path):
    from sqlmodel import Session

    from service.db import make_engine, migrate
    from service.models import Content, Screening

    db = f"sqlite:///{tmp_path / 'direct.db'}"
    engine = make_engine(db)
    migrate(engine)
    with Session(engine) as session:
        content = Content(title="clip", duration_s=10)
        session.add(content)
        session.commit()
        screening = Screening(content_id=content.id, content_offset_s=0.5)
        session.add(screening)
        session.commit()
        cid, sid = content.id, screening.id
    clip = FIXTURES / "two_faces.mp4"
    r = run_cli("live", "--source", clip, "--screening", sid, "--db", db, "--fps", 4, "--metrics-port", -1,
                "--spool", tmp_path / "s.db")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["spool_left"] == 0 and summary["frames_dropped"] == 0 and summary["faces"] > 0
    offline = run_cli("analyze", clip, "--fps", 4, "--content-offset", 0.5, "--out", tmp_path / "off",
                      "--scene", summary["scene"])
    assert offline.returncode == 0, offline.stderr
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(engine, min_audience=1)) as client:
        stored = client.get(f"/api/v1/contents/{cid}/curves", params={"metrics": ",".join(METRICS)}).json()
        assert [s["state"] for s in client.get(f"/api/v1/screenings/{sid}/sources").json()] == ["stopped"]
    assert_curve_equals(stored, pd.read_csv(tmp_path / "off" / "curves.csv"))

    for args, code, text in (
            (("--source", clip, "--screening", 99, "--db", db), 8, "not found"),
            (("--source", FIXTURES / "images" / "astronaut.jpg", "--screening", sid, "--db", db), 4, "needs a video"),
            (("--source", tmp_path / "missing.mp4", "--screening", sid, "--db", db), 3, "no such file"),
            (("--source", clip, "--screening", sid, "--db", db, "--api", "http://x"), 2, "not allowed"),
            (("--source", clip, "--screening", sid, "--api", "http://127.0.0.1:9"), 8, "cannot reach")):
        r = run_cli("live", *args, "--metrics-port", -1, "--spool", tmp_path / "e.db")
        assert r.returncode == code and text in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
