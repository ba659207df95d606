"""report.html: one self-contained page (opens from disk, nothing fetched) with what a run found: the
curves (inline SVG), the moments that landed, a per-track summary (anonymous ids), the models and the
run's figures. Numbers only: no frame or face appears in it."""
from __future__ import annotations

import html
import io
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .stats import find_moments, read_mask
from .labels import EMOTIONS
from .plot import curves_figure, save

TRACK_VALUES = ("p_happiness", "valence", "smile", "attention")


class TrackSummary:
    """Per (source, track): observations (and how many carried an expression read at `min_quality`),
    first and last time, seat, mean of a few values, and how often each expression was the top one. Fed
    with observation table columns, job by job."""

    def __init__(self, min_quality: float = 0.0):
        self._tracks: dict[tuple[str, int], dict] = {}
        self.min_quality = min_quality

    def add_rows(self, cols: dict[str, np.ndarray]) -> None:
        if len(cols["t"]) == 0:
            return
        sources = np.asarray(cols["source"]).astype(str)
        tracks = np.asarray(cols["track_id"], np.int64)
        keys = np.char.add(np.char.add(sources, "\x00"), tracks.astype(str))
        _, first, group = np.unique(keys, return_index=True, return_inverse=True)
        group = group.reshape(-1)
        emotions = np.asarray(cols["emotion"]).astype(str)
        read = read_mask(cols, self.min_quality)
        for g, i0 in enumerate(first):
            rows = group == g
            key = (str(sources[i0]), int(tracks[i0]))
            t = np.asarray(cols["t"], np.float64)[rows]
            entry = self._tracks.setdefault(key, {"n": 0, "read": 0, "first": np.inf, "last": -np.inf, "seat": "",
                                                  "sums": np.zeros(len(TRACK_VALUES)), "top": {}})
            entry["n"] += int(rows.sum())
            entry["read"] += int((rows & read).sum())
            entry["first"], entry["last"] = min(entry["first"], t.min()), max(entry["last"], t.max())
            entry["seat"] = entry["seat"] or str(np.asarray(cols["seat"])[i0] or "")
            entry["sums"] += [np.nansum(np.asarray(cols[v], np.float64)[rows & (read | (v == "attention"))])
                              for v in TRACK_VALUES]
            for e in emotions[rows & read]:
                entry["top"][e] = entry["top"].get(e, 0) + 1

    def rows(self) -> list[dict]:
        out = []
        for (source, track), e in sorted(self._tracks.items()):
            n = np.array([e["n"] if v == "attention" else e["read"] for v in TRACK_VALUES], np.float64)
            means = np.where(n > 0, e["sums"] / np.maximum(n, 1), np.nan)
            top = max(e["top"].items(), key=lambda kv: kv[1])[0] if e["top"] else ""
            out.append({"source": source, "track_id": track, "seat": e["seat"], "observations": e["n"], "read": e["read"],
                        "first_s": float(e["first"]), "last_s": float(e["last"]),
                        "seconds": float(e["last"] - e["first"]), "top_expression": top,
                        **{v: float(m) for v, m in zip(TRACK_VALUES, means)}})
        return out


def _coverage(c: dict | None) -> str:
    if not c or not c["present_track_buckets"]:
        return "no face present"
    return (f"{c['read_track_buckets']} of {c['present_track_buckets']} face-buckets present had an expression read "
            f"({100 * c['read_share']:.0f}%; {c['read_samples']} of {c['present_samples']} observations at quality "
            f">= {c['min_quality']:g})")


def _clock(t: float) -> str:
    s = int(round(max(t, 0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _table(headers: list[str] | None, rows: list[list], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers or [])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if headers else ""
    return f'<table class="{cls}">{thead}<tbody>{body}</tbody></table>'


STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1d2330;padding:0 1rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #d0d5dd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.4rem 0}th,td{padding:.2rem .7rem;border-bottom:1px solid #eaecf0;
text-align:left;font-variant-numeric:tabular-nums}th{background:#f2f4f7}.muted{color:#667085}
.figures td:first-child{color:#667085}svg{max-width:100%;height:auto}code{font-size:.9em}"""


def _label_rule(rule: str | None) -> str:
    """The run's `--label-rule` (vision.labels.LABEL_RULES), in words."""
    return {"probable": "; each face labelled by its most probable expression (--label-rule probable)",
            "balanced": "; each face labelled by the head's balanced decision (--label-rule balanced)"}.get(rule, "")


def _crop_cadence(every_s: float) -> str:
    """The run's `--expression-every`, in words (vision.readings)."""
    if not every_s:
        return "on every analysed frame"
    return f"at most every {every_s:g} s per face (--expression-every), the last reading carried between"


def write_report(path: Path, summary: dict, curves: dict[str, np.ndarray], tracks: list[dict], title: str,
                 figure=None) -> None:
    """`figure`: the run's curves figure (vision.plot.curves_figure) when it is already built; its title is
    set to `title` here."""
    svg = io.BytesIO()
    save(figure if figure is not None else curves_figure(curves, title), svg, "svg", title)
    svg_text = svg.getvalue().decode("utf-8")
    svg_text = svg_text[svg_text.index("<svg"):]  # drop the XML prologue and doctype: inline in HTML
    t = np.asarray(curves["t"], np.float64)
    moments_html = []
    for metric, name in (("p_happiness", "happiness"), ("valence", "valence"), ("p_surprise", "surprise")):
        found = find_moments(t, np.asarray(curves[metric], np.float64), 5) if len(t) else []
        rows = [[i + 1, f"{_clock(m['t'])} ({m['t']:g} s)", f"{m['value']:.3f}", f"+{m['prominence']:.3f}",
                 f"{_clock(m['start'])}–{_clock(m['end'])}", f"{m['duration_s']:g} s"] for i, m in enumerate(found)]
        moments_html.append(f"<h3>{name}</h3>" + (_table(["#", "peak at", "mean", "prominence", "from–to", "lasts"], rows)
                                                  if rows else '<p class="muted">no peak</p>'))
    s = summary
    figures = [["inputs", ", ".join(s["inputs"])], ["sources", s["sources"]],
               ["frames read / analysed", f"{s['frames_read']} / {s['frames_analysed']}"],
               ["face observations", s["faces"]], ["tracks (anonymous)", s["tracks"]],
               ["coverage (present vs read)", _coverage(s.get("coverage"))],
               ["analysis speed", f"{s['achieved_fps']:.1f} frames/s, {s['elapsed_s']:.1f} s on {s['workers']} "
                                  f"process(es)"],
               ["scene", f"{s['settings']['scene']} ({s['settings']['scene_reason']})"],
               ["analysis rate", f"{s['settings']['fps']:g} frames/s" if s["settings"]["fps"] else "every frame"],
               ["bucket / content offset", f"{s['settings']['bucket_s']:g} s / {s['settings']['content_offset_s']:g} s"],
               ["classifier", s["settings"]["classifier"] + _label_rule(s["settings"].get("label_rule"))],
               ["face crops read", _crop_cadence(s["settings"].get("expression_every_s", 0.0))],
               ["files skipped", ", ".join(f"{f['source']} ({f['error']})" for f in s["files_skipped"]) or "none"]]
    models = [[name, m["file"], m["sha256"]] for name, m in s["models"].items()]
    track_rows = [[r["source"], r["track_id"], r["seat"] or "–", r["observations"], r["read"], _clock(r["first_s"]),
                   _clock(r["last_s"]), f"{r['seconds']:.1f}", r["top_expression"],
                   *(f"{r[v]:.3f}" if r[v] == r[v] else "–" for v in TRACK_VALUES)] for r in tracks]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Audience reactions — {html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>Audience reactions</h1>
<p class="muted">{html.escape(title)} · written {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by
<code>audience analyze</code>. Numbers only: no frame, face crop or embedding is kept.</p>
<h2>Curves</h2>
<p class="muted">Mean over faces per {s['settings']['bucket_s']:g} s of content time, with 95% confidence bands;
expressions ({', '.join(EMOTIONS)}), valence, smile and attention; the faces behind each bucket.</p>
{svg_text}
<h2>Moments that landed</h2>
<p class="muted">Highest peaks of the curve by prominence, with their extent at half prominence.</p>
{''.join(moments_html)}
<h2>Tracks</h2>
<p class="muted">One row per anonymous track (a face followed through the video; ids mean nothing outside this
run). Means over the track's observations: attention over all of them, expressions over those read (a face
present but turned away, covered or too small counts for attention, as 0, and not for expressions).</p>
{_table(["source", "track", "seat", "observations", "read", "first", "last", "seconds", "top expression",
         *TRACK_VALUES], track_rows) if track_rows else '<p class="muted">No faces were found.</p>'}
<h2>Run</h2>
{_table(None, figures, "figures")}
<h2>Models</h2>
{_table(["model", "file", "sha256"], models)}
</body></html>
"""
    Path(path).write_text(page, encoding="utf-8")
