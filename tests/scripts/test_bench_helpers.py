"""scripts/_bench.py: what the benchmark and conversion scripts share."""
import math

import numpy as np

from _bench import Count, Stopwatch, parser, read_frames, write_checked, write_video
from builders import FIXTURES


def test_parser_types_options_from_their_defaults():
    args = parser("Doc line.\n\nmore", db=None, seats=32, seconds=20.0, ingest_seconds=300).parse_args(
        ["--seats", "4", "--ingest-seconds", "7", "--seconds", "1.5"])
    assert (args.db, args.seats, args.seconds, args.ingest_seconds) == (None, 4, 1.5, 7)
    assert parser("Doc line.", seats=32).description == "Doc line."


def test_frames_round_trip_through_a_video(tmp_path):
    frames, fps = read_frames(FIXTURES / "two_faces.mp4")
    assert frames and fps > 0
    path = write_video(tmp_path / "copy.avi", frames[:5], fps, "MJPG")
    again, fps_again = read_frames(path)
    assert len(again) == 5 and again[0].shape == frames[0].shape and fps_again == fps


def test_count_and_stopwatch():
    count = Count()
    with Stopwatch() as sw:
        count.write([1, 2, 3])
        count.write([])
    assert (count.frames, count.faces) == (2, 3)
    assert sw.s >= 0 and sw.ms == sw.s * 1000


def test_write_checked_refuses_a_conversion_off_its_reference(tmp_path, capsys):
    target = tmp_path / "model.onnx"
    assert write_checked(target, b"x", 2e-4, 1e-4) == 1 and not target.exists()
    assert write_checked(target, b"x", math.nan, 1e-4) == 1 and not target.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and err.startswith("error: ")
    assert write_checked(target, b"xy", np.float32(1e-6), 1e-4) == 0 and target.read_bytes() == b"xy"
