"""curves.png and the report's inline SVG come from one figure, built once per run."""
import io

import numpy as np

from vision.labels import VALUE_COLUMNS
from vision.plot import curves_figure, plot_curves, save


def _curves():
    t = np.arange(5.0)
    curves = {"t": t, "n_faces": np.array([1, 2, 2, 1, 0])}
    for i, v in enumerate(VALUE_COLUMNS):
        curves[v], curves[f"{v}_ci95"] = np.linspace(0.1, 0.4, 5) + 0.01 * i, np.full(5, 0.05)
    return curves


def test_one_figure_saved_twice_equals_two_separate_plots(tmp_path):
    fig = curves_figure(_curves(), "clip.mp4 — 6 face observations")
    save(fig, tmp_path / "once.png")
    svg = io.BytesIO()
    save(fig, svg, "svg", "clip.mp4")  # the report's title, on the same figure
    plot_curves(_curves(), tmp_path / "separate.png", "clip.mp4 — 6 face observations")
    assert (tmp_path / "once.png").read_bytes() == (tmp_path / "separate.png").read_bytes()
    text = svg.getvalue().decode()
    assert "<svg" in text and "6 face observations" not in text
