"""vision.runner: each source's reactions are computed once, on its whole timeline: in the job for a whole
source, after stitching for the splits of a long video."""
import numpy as np
from builders import fake_observations

from vision import runner
from vision.capture import SourceSpec
from vision.pipeline import SourceReport
from vision.reactions import Reactions
from vision.runner import Job, run_jobs
from vision.settings import Settings


def fake_job(whole: dict):
    """analyze_job over `whole` columns: a spec's rows from its start_frame to its end_frame."""
    def analyze_job(specs, settings, progress=None, stages=None):
        spec = specs[0]
        keep = (whole["frame"] >= spec.start_frame) & (whole["frame"] < (spec.end_frame or 10 ** 9))
        cols = {c: v[keep] for c, v in whole.items()}
        report = SourceReport(spec.name, "video", source_fps=3.0, start_frame=spec.start_frame,
                              analysed_t=sorted(set(cols["t"].tolist())))
        return [(cols, report)]
    return analyze_job


def test_reactions_once_per_source_for_whole_jobs_and_splits(monkeypatch):
    whole = fake_observations(n_tracks=2, seconds=12, per_second=3)
    order = np.lexsort((whole["track_id"], whole["t"]))  # rows in time order, as a job gives them
    whole = {c: v[order] for c, v in whole.items()}
    for c in ("x", "y"):
        whole[c] = np.where(whole["track_id"] == 1, 0.1, 0.6).astype(np.float32)
    for c in ("w", "h"):
        whole[c] = np.full(len(whole["t"]), 0.2, np.float32)
    monkeypatch.setattr(runner, "analyze_job", fake_job(whole))
    settings = Settings()
    expected = Reactions(settings.reactions).update(whole)
    spec = SourceSpec("v.mp4", "video", "v.mp4")
    whole_job = list(run_jobs([Job([spec])], settings, 1))
    splits = [Job([SourceSpec("v.mp4", "video", "v.mp4", start_frame=0, end_frame=18)], 0),
              Job([SourceSpec("v.mp4", "video", "v.mp4", start_frame=12, end_frame=None)], 18)]
    split_run = list(run_jobs(splits, settings, 1))
    for results in (whole_job, split_run):
        (cols, _), = results[0]
        assert np.isfinite(cols["p_happiness_delta"]).any()
        for c in ("track_id", "t", "p_happiness_delta", "valence_delta"):
            np.testing.assert_array_equal(cols[c], expected[c])
