"""A season's manifest (CSV or Parquet): one row per recording, checked before any work.

Columns: `path` (file or URL; relative to the manifest), `content` (title), `screening` (name), optionally
`camera` (default: the file's stem), `content_offset` (seconds, default 0), `labels` ("k=v;k=v") and any other
column as a screening label. A bad manifest is a ManifestError (exit 2); a missing file InputNotFound (exit 3).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputNotFound, ManifestError

REQUIRED = ("path", "content", "screening")
KNOWN = REQUIRED + ("camera", "content_offset", "labels")


@dataclass(frozen=True)
class Recording:
    row: int  # 1-based data row of the manifest
    path: str
    content: str
    screening: str
    camera: str
    content_offset: float = 0.0
    labels: tuple = ()  # (key, value) pairs besides the screening's name

    @property
    def key(self) -> str:
        """File-name-safe and unique within a season: content, screening and camera."""
        return "__".join(re.sub(r"[^A-Za-z0-9._-]+", "_", v).strip("_") or "_"
                         for v in (self.content, self.screening, self.camera))


def _rows(path: Path) -> list[dict]:
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return [{k: "" if v is None else str(v) for k, v in r.items()} for r in pq.read_table(path).to_pylist()]
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in csv.DictReader(f)]
    except FileNotFoundError:
        raise InputNotFound(f"manifest {path} not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"manifest {path}: unreadable ({exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def _labels(text: str, row: int) -> list[tuple[str, str]]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ManifestError(f"manifest row {row}: labels must read k=v;k=v, got {text!r}")
        out.append((key.strip(), value.strip()))
    return out


def read_manifest(path: Path | str) -> list[Recording]:
    """The recordings of a manifest, checked. Raises ManifestError (exit 2) or InputNotFound (exit 3)."""
    path = Path(path)
    rows = _rows(path)
    if not rows:
        raise ManifestError(f"manifest {path}: no rows (columns: {', '.join(REQUIRED)}, optional "
                            f"{', '.join(KNOWN[3:])})")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise ManifestError(f"manifest {path}: missing column(s) {', '.join(missing)} (needs {', '.join(REQUIRED)})")
    out, seen = [], {}
    for i, r in enumerate(rows, 1):
        for c in REQUIRED:
            if not r[c]:
                raise ManifestError(f"manifest row {i}: empty {c!r}")
        try:
            offset = float(r.get("content_offset") or 0.0)
        except ValueError:
            raise ManifestError(f"manifest row {i}: content_offset {r['content_offset']!r} is not a number") from None
        if not np.isfinite(offset):
            raise ManifestError(f"manifest row {i}: content_offset must be a finite number of seconds")
        location = r["path"]
        if "://" not in location and not location.isdigit():
            p = Path(location)
            location = str(p if p.is_absolute() else path.parent / p)
            if not Path(location).exists():
                raise InputNotFound(f"manifest row {i}: {r['path']} not found")
        labels = _labels(r.get("labels", ""), i) + [(k, r[k]) for k in r if k not in KNOWN and k and r[k]]
        if "name" in dict(labels):
            raise ManifestError(f"manifest row {i}: the label 'name' is the screening column's")
        rec = Recording(i, location, r["content"], r["screening"],
                        r.get("camera") or Path(r["path"].split("?")[0].rstrip("/")).stem or "camera",
                        offset, tuple(labels))
        if rec.key in seen:
            raise ManifestError(f"manifest rows {seen[rec.key]} and {i}: the same content, screening and camera "
                                f"({rec.content} / {rec.screening} / {rec.camera}); give each camera its own name")
        seen[rec.key] = i
        out.append(rec)
    return out
