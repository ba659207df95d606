import json

import numpy as np
import pandas as pd
import pytest

from builders import FIXTURES, make_observation, run_cli
from vision.capture import Frame
from vision.errors import AudienceError
from vision.seats import SeatMap, SeatTracker, mask_excluded

LEFT, RIGHT = [0.1, 0.3, 0.1, 0.2], [0.6, 0.3, 0.1, 0.2]


def test_viewer_keeps_id_through_short_absences_and_a_new_viewer_after_a_long_one():
    tr = SeatTracker(empty_after_s=5.0)
    assert tr.update(make_observation(2, t=0, boxes=[LEFT, RIGHT])).track_ids.tolist() == [1, 2]
    # right viewer looks down for 3 s (no face), then is back: same id
    for t in (1, 2, 3):
        assert tr.update(make_observation(1, t=t, boxes=[LEFT])).track_ids.tolist() == [1]
    assert tr.update(make_observation(2, t=3.5, boxes=[LEFT, RIGHT])).track_ids.tolist() == [1, 2]
    # right seat empty for 8 s > 5 s: the next face there is a new viewer
    for t in range(4, 12):
        tr.update(make_observation(1, t=t, boxes=[LEFT]))
    assert tr.update(make_observation(2, t=12.0, boxes=[LEFT, RIGHT])).track_ids.tolist() == [1, 3]
    assert tr.seat_ids == ["L1", "L2"]
    assert tr.update(make_observation(1, t=12.5, boxes=[RIGHT])).seats.tolist() == ["L2"]


def test_moving_within_the_seat_keeps_the_id_and_neighbours_do_not_swap():
    tr = SeatTracker()
    tr.update(make_observation(2, t=0, boxes=[LEFT, [0.22, 0.3, 0.1, 0.2]]))
    leaning = [[0.13, 0.32, 0.1, 0.2], [0.20, 0.29, 0.1, 0.2]]  # both lean towards each other
    assert tr.update(make_observation(2, t=1, boxes=leaning)).track_ids.tolist() == [1, 2]


def test_seat_map_names_seats_and_drops_faces_outside_when_not_learning(tmp_path):
    p = tmp_path / "seats.json"
    p.write_text(json.dumps({"seats": [{"id": "A1", "box": [0.05, 0.25, 0.2, 0.3]}], "excluded": []}))
    tr = SeatTracker(SeatMap.load(p), learn=False)
    out = tr.update(make_observation(2, t=0, boxes=[LEFT, RIGHT]))
    assert len(out) == 1 and out.track_ids.tolist() == [1] and tr.seat_ids == ["A1"]
    assert out.seats.tolist() == ["A1"]


@pytest.mark.parametrize("content,reason", [
    ("{", "not valid JSON"),
    ('{"seats": [{"box": [0, 0, 1, 1]}]}', "must be"),
    ('{"seats": [{"id": "A", "box": [0.9, 0, 0.5, 0.5]}]}', "within the frame"),
    ('{"seats": [{"id": "A", "box": [0, 0, 0.1, 0.1]}, {"id": "A", "box": [0.5, 0, 0.1, 0.1]}]}', "unique"),
])
def test_bad_seat_maps_are_rejected_with_a_reason(tmp_path, content, reason):
    p = tmp_path / "seats.json"
    p.write_text(content)
    with pytest.raises(AudienceError, match=reason):
        SeatMap.load(p)


def test_mask_excluded_blacks_out_regions_on_a_copy():
    image = np.full((100, 200, 3), 255, np.uint8)
    frame = Frame("s", 0, 0.0, image)
    masked = mask_excluded(frame, np.array([[0.5, 0.0, 0.5, 0.5]], np.float32))
    assert masked.image[:50, 100:].max() == 0 and masked.image[50:, :].min() == 255
    assert masked.image[:50, :100].min() == 255 and image.min() == 255
    assert mask_excluded(frame, np.zeros((0, 4))) is frame


def test_opted_out_region_is_never_analysed(tmp_path):
    seat_map = tmp_path / "seats.json"
    seat_map.write_text(json.dumps({"seats": [], "excluded": [[0.5, 0.0, 0.5, 1.0]]}))
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--fps", "5", "--seat-map", seat_map, "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    obs = pd.read_parquet(tmp_path / "o" / "observations.parquet")
    assert len(obs) > 0 and (obs["x"] + obs["w"] <= 0.5).all()  # only the left face, never the right
    bad = tmp_path / "bad.json"
    bad.write_text("[")
    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--seat-map", bad, "--out", tmp_path / "o2")
    assert r.returncode == 1 and "not valid JSON" in r.stderr and len(r.stderr.strip().splitlines()) == 1
