"""The parts of `audience live` alone (service/live, service/uplink), with fakes: no models, no camera,
no service. The whole process end to end is in test_live.py."""
from __future__ import annotations

import http.server
import threading
import time

import numpy as np
import pytest

from builders import make_observation
from service.live.batcher import Outbox, SecondBatcher, Timing
from service.live.loop import LiveAnalysis, pump, stop_on_signals
from service.live.ops import LiveMetrics
from service.live.run import LiveRequest, screening_offset
from service.store import ROW_KEYS
from service.uplink.client import ApiClient
from service.uplink.sender import Sender
from service.uplink.spool import Spool
from vision.capture import Frame
from vision.errors import PublishError, Unreachable
from vision.observation import Observation
from vision.settings import Settings
from vision.stream import Gap


def faces(t: float, ids=(1, 2), quality=0.9) -> Observation:
    n = len(ids)
    probs = np.full((n, 7), 1 / 7, np.float32)
    return make_observation(n, t=t, track_ids=np.array(ids), probs=probs, labels=np.zeros(n, int),
                            quality=np.full(n, quality, np.float32), metrics=np.zeros((n, 5), np.float32),
                            valence=np.zeros(n, np.float32), pose=np.zeros((n, 3), np.float32),
                            attention=np.ones(n, np.float32))


class Batches:
    """Stands in for the Outbox: remembers what the batcher hands over."""

    def __init__(self):
        self.got = []

    def stats(self, cols, covered, max_id):
        self.got.append((cols, covered, max_id))


def test_batcher_hands_over_each_finished_second_once():
    out = Batches()
    batcher = SecondBatcher(0.5, out)  # content time = source time - 0.5
    for t in (0.5, 1.0, 1.4, 1.5, 2.0, 3.7):
        batcher.write(faces(t))
    assert [covered for _, covered, _ in out.got] == [[0], [1]]  # 3.7 (second 3) is still in progress
    assert [len(cols["t"]) for cols, _, _ in out.got] == [6, 4]
    batcher.flush()
    batcher.flush()  # nothing left: nothing handed over
    assert [covered for _, covered, _ in out.got][2:] == [[3]]
    assert "p_happiness_delta" in out.got[0][0]  # per-viewer reactions are built as it goes


def test_batcher_keeps_seconds_without_faces_and_ids_above_every_id_used():
    out = Batches()
    batcher = SecondBatcher(0.0, out, id_base=10)
    batcher.write(faces(0.2, ids=(1, -1)))
    batcher.write(Observation.empty("s", 3, 1.2, 640, 360))  # a second analysed without any face
    batcher.restart_ids()  # a gap: the tracker starts again from 1
    batcher.write(faces(2.1, ids=(1,)))
    batcher.flush()
    (first, c0, m0), (empty, c1, m1), (after, c2, m2) = out.got
    assert first["track_id"].tolist() == [11, -1] and m0 == 11
    assert len(empty["t"]) == 0 and c1 == [1]
    assert after["track_id"].tolist() == [12] and m2 == 12


def test_timing_knows_when_each_second_was_read(tmp_path):
    spool = Spool(tmp_path / "s.db")
    metrics = LiveMetrics(spool)
    timing = Timing(0.0, metrics)
    timing.reading(time.monotonic() - 2.0)  # the frame in the loop was read 2 s ago
    timing.write(faces(0.5))
    assert timing.read_at([0]) == pytest.approx(time.time() - 2.0, abs=0.5)
    assert timing.read_at([0]) == pytest.approx(time.time(), abs=0.5)  # taken once; unknown: now
    assert metrics.analysed._value.get() == 1 and metrics.detail(type("R", (), {
        "frames_dropped": 0, "reconnects": 0})())["latency_p95_s"] >= 2.0
    spool.close()


def test_outbox_spools_track_second_statistics_and_gaps(tmp_path):
    spool = Spool(tmp_path / "s.db")
    metrics = LiveMetrics(spool)
    woken = []
    outbox = Outbox(spool, 7, "cam", 0.5, 0.4, Timing(0.5, metrics), metrics, lambda: woken.append(1),
                    ids_key="s7/cam/max_id")
    out = Batches()
    batcher = SecondBatcher(0.5, out)
    for t in (0.6, 0.9, 1.2):
        batcher.write(faces(t, quality=0.9))
    batcher.write(faces(1.3, ids=(3,), quality=0.1))  # below min_quality: present, not read
    batcher.flush()
    cols, covered, _ = out.got[0]
    outbox.stats(cols, covered, 42)
    outbox.gap(Gap(3.5, 6.0, "source stopped"))
    (_, kind, body, _), (_, gap_kind, gap, _) = spool.peek(5)
    assert kind == "stats" and body["screening"] == 7 and body["camera"] == "cam" and body["covered"] == [0]
    assert set(body["columns"]) == set(ROW_KEYS)
    assert body["columns"]["track_id"] == [1, 2] and body["columns"]["n"] == [3, 3]  # track 3 not read
    assert body["columns"]["second"] == [0, 0] and body["captured"] > 0
    assert gap_kind == "gap" and (gap["start_s"], gap["end_s"], gap["reason"]) == (3.0, 5.5, "source stopped")
    assert spool.meta("s7/cam/max_id") == 42 and len(woken) == 2
    assert metrics.faces._value.get() == 7 and metrics.gap_seconds._value.get() == 2.5
    spool.close()


class FakeReader:
    """A LiveReader's consumer side over a script of (frame or None, gaps) steps; finished at the end."""

    def __init__(self, steps):
        self.steps = list(steps)
        self.finished = threading.Event()
        self.frames_read = self.frames_dropped = self.reconnects = 0
        self.state, self.error = "running", None
        self._gaps = []

    def get(self, timeout):
        if not self.steps:
            self.finished.set()
            return None
        frame, gaps = self.steps.pop(0)
        self._gaps += gaps
        self.frames_read += frame is not None
        return frame

    def take_gaps(self):
        gaps, self._gaps = self._gaps, []
        return gaps

    def open_gap(self):
        return None

    def stop(self):
        pass


class FakeLoop:
    """FrameLoop's surface: each frame becomes one observation with two tracked faces, to every sink."""

    def __init__(self, sinks):
        self.sinks = sinks

    def push(self, frame):
        for sink in self.sinks:
            sink.write(faces(frame.t))

    def flush(self):
        pass


class FakeTracker:
    resets = 0

    def reset(self):
        self.resets += 1


class FakeTarget:
    """The sender's target: records what it is sent; unreachable for the first `down` sends."""

    def __init__(self, down=0):
        self.items, self.beats, self.down = [], [], down

    def send(self, kind, body):
        if self.down:
            self.down -= 1
            raise Unreachable("down")
        self.items.append((kind, body))

    def report(self, *beat):
        self.beats.append(beat)


def frame(t):
    return Frame("cam", int(t * 4), t, np.zeros((4, 4, 3), np.uint8), captured=time.monotonic())


def test_pump_cuts_at_gaps_and_ends_with_the_source():
    calls = []

    class Analysis:
        def push(self, f):
            calls.append(("push", f.t))

        def cut(self):
            calls.append(("cut",))

    class Box:
        def gap(self, g):
            calls.append(("gap", g.reason))

    gap = Gap(1.0, 3.0, "stalled")
    reader = FakeReader([(frame(0.0), []), (None, []), (frame(0.5), []), (frame(3.0), [gap]), (None, [])])
    metrics = type("M", (), {"count": lambda self, r: calls.append(("count", r.frames_read))})()
    pump(reader, Analysis(), Box(), metrics, threading.Event())
    assert [c for c in calls if c[0] != "count"] == [("push", 0.0), ("push", 0.5), ("cut",), ("gap", "stalled"),
                                                     ("push", 3.0)]
    assert calls[-1] == ("count", 3)
    stopped = threading.Event()
    stopped.set()
    reader = FakeReader([(frame(0.0), [])])
    pump(reader, Analysis(), Box(), metrics, stopped)
    assert reader.steps  # a stop before the first frame reads nothing


def test_live_composition_with_fakes_spools_and_sends_every_second_and_gap(tmp_path):
    """reader -> frame loop -> batcher -> outbox -> spool -> sender, as run_live wires them, with a fake
    reader, frame loop and target: every second arrives once, in order, the gap between them, through an
    outage of the target."""
    spool = Spool(tmp_path / "live.spool.db")
    metrics = LiveMetrics(spool)
    target = FakeTarget(down=2)
    reader = FakeReader([(frame(t / 4), [Gap(2.0, 4.0, "stalled")] if t == 16 else []) for t in range(24)])
    sender = Sender(spool, target, lambda: (1, "cam", reader.state, metrics.detail(reader)),
                    on_sent=metrics.on_sent, on_error=metrics.on_error, max_backoff_s=0.05)
    timing = Timing(0.0, metrics)
    outbox = Outbox(spool, 1, "cam", 0.0, 0.4, timing, metrics, sender.wake)
    batcher = SecondBatcher(0.0, outbox)
    tracker = FakeTracker()
    analysis = LiveAnalysis(FakeLoop([batcher, timing]), tracker, batcher, timing)
    sender.start()
    with stop_on_signals() as stop:
        pump(reader, analysis, outbox, metrics, stop)
    analysis.finish()
    assert sender.finish(10.0)
    assert [(k, b.get("covered", b.get("reason"))) for k, b in target.items] == [
        ("stats", [0]), ("stats", [1]), ("stats", [2]), ("stats", [3]), ("gap", "stalled"), ("stats", [4]),
        ("stats", [5])]
    assert [sum(b["columns"]["n"]) for k, b in target.items if k == "stats"] == [8] * 6
    after_gap = [b["columns"]["track_id"] for k, b in target.items if k == "stats"][4]
    assert after_gap == [3, 4] and tracker.resets == 1  # ids continue above every id used
    assert target.beats and target.beats[-1][:2] == (1, "cam")
    assert metrics.send_errors._value.get() == 2 and metrics.sent._value.get() == 7
    assert metrics.analysed._value.get() == 24 and spool.depth() == 0
    spool.close()


def test_screening_offset_falls_back_to_the_spool_only_when_unreachable(tmp_path, capsys):
    spool = Spool(tmp_path / "s.db")
    req = LiveRequest(source="x.mp4", screening=3, settings=Settings(fps=2.0), api="http://127.0.0.1:9")

    class Client:
        def __init__(self, answer):
            self.answer = answer

        def screening_offset(self, screening, content):
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    with pytest.raises(Unreachable):  # nothing remembered yet
        screening_offset(Client(Unreachable("cannot reach")), req, spool, "s3/cam", None)
    assert screening_offset(Client(12.5), req, spool, "s3/cam", None) == 12.5
    import sys

    assert screening_offset(Client(Unreachable("cannot reach")), req, spool, "s3/cam", sys.stderr) == 12.5
    assert "remembered in the spool" in capsys.readouterr().err
    with pytest.raises(PublishError, match="not found"):  # a refusal is never papered over
        screening_offset(Client(PublishError("screening 3 not found")), req, spool, "s3/cam", sys.stderr)
    spool.close()


def test_client_sends_its_own_api_key_and_says_unreachable_by_class():
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            body = b'{"content_id": 1, "content_offset_s": 4.0}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert ApiClient(base, api_key="k1").screening_offset(5, 1) == 4.0
        assert ApiClient(base).screening_offset(5, None) == 4.0
        with pytest.raises(PublishError, match="belongs to content 1"):
            ApiClient(base, api_key="k2").screening_offset(5, 2)
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["Bearer k1", None, "Bearer k2"]
    with pytest.raises(Unreachable) as caught:
        ApiClient(base, timeout_s=2).screening_offset(5, None)  # the server is gone
    assert isinstance(caught.value, PublishError) and caught.value.exit_code == 8
    with pytest.raises(PublishError, match="http") as caught:
        ApiClient("ftp://example.org")
    assert not isinstance(caught.value, Unreachable)
