"""curves.png: the audience's expressions, a few face metrics and the number of faces over content time."""
from __future__ import annotations

import numpy as np

from .labels import EMOTIONS

COLOURS = {"anger": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "happiness": "#2ca02c",
           "sadness": "#1f77b4", "surprise": "#ff7f0e", "neutral": "#7f7f7f"}


TITLE_CHARS = 110  # a longer title (an image folder's every file name) collapses the constrained layout


def short_title(title: str, limit: int = TITLE_CHARS) -> str:
    return title if len(title) <= limit else title[: limit - 1] + "…"


DPI = 110


def plot_curves(curves: dict[str, np.ndarray], path, title: str, fmt: str | None = None) -> None:
    """Write the figure to `path` (a file name, or a binary file object with `fmt`, e.g. "svg"); the title
    is cut to one line (`TITLE_CHARS`)."""
    save(curves_figure(curves, title), path, fmt)


def save(fig, path, fmt: str | None = None, title: str | None = None) -> None:
    """Write a figure of `curves_figure` (again, in another format or under another `title`). The constrained
    layout is worked out on the first save and kept for later ones (a title is always one line, so another
    one needs no other layout; working it out again was a third of a save, and the unrendered draw
    savefig makes for a layout engine another third)."""
    if title is not None:
        fig.axes[0].set_title(short_title(title), fontsize=11, loc="left")
    fig.savefig(path, dpi=DPI, format=fmt)
    from matplotlib import rc_context

    with rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)  # the positions just computed stay; None, not "none": savefig draws
        #                              once more (unrendered) for any layout engine, "none"'s placeholder too


def curves_figure(curves: dict[str, np.ndarray], title: str):
    """The figure, built once (matplotlib's object API: no pyplot, no backend switch, nothing global), so one
    run can write it as curves.png and as the report's inline SVG."""
    from matplotlib.figure import Figure

    t = np.asarray(curves["t"], float)
    width = float(t[1] - t[0]) if len(t) > 1 else 1.0
    centre = t + width / 2  # lines at bucket centres, bars over the whole bucket
    fig = Figure(figsize=(12, 8.5), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]})
    step = len(t) <= 1

    def line(ax, key, label, colour, style="-"):
        y, h = np.asarray(curves[key], float), np.asarray(curves[f"{key}_ci95"], float)
        ax.plot(centre, y, style, color=colour, label=label, lw=1.6, marker="o" if step else None)
        ok = np.isfinite(h)  # a bucket without an interval (one face) breaks the band, as in the dashboard
        ax.fill_between(centre, y - np.where(ok, h, 0), y + np.where(ok, h, 0), where=ok, color=colour, alpha=0.15,
                        lw=0)

    for e in EMOTIONS:
        line(axes[0], f"p_{e}", e, COLOURS[e])
    axes[0].set_ylabel("mean probability")
    axes[0].set_ylim(0, 1)
    axes[0].legend(ncol=7, fontsize=8, loc="upper center", frameon=False)
    axes[0].set_title(short_title(title), fontsize=11, loc="left")

    line(axes[1], "valence", "valence (-1..1)", "#000000")
    line(axes[1], "smile", "smile", "#2ca02c", "--")
    line(axes[1], "attention", "attention", "#17becf", ":")
    axes[1].axhline(0, color="#bbbbbb", lw=0.8)
    axes[1].set_ylim(-1.05, 1.05)
    axes[1].set_ylabel("face metrics")
    axes[1].legend(ncol=3, fontsize=8, loc="lower left", frameon=False)

    edges = np.append(t, t[-1] + width) if len(t) else np.zeros(1)
    axes[2].stairs(curves["n_faces"], edges, fill=True, color="#999999")  # one artist, not a bar per bucket
    axes[2].set_ylabel("faces")
    axes[2].set_xlabel("content time (s); bands: 95% CI over faces")
    for ax in axes:
        ax.grid(alpha=0.25)
    return fig
