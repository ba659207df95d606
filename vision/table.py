"""Observations as a column table: what sinks write, one row per face per analysed frame.

Only these columns ever leave the process: the source name, frame index, time, anonymous track id, the
normalised box, the numbers in `vision.labels.VALUE_COLUMNS` (the `<value>_delta` columns are NaN
until `vision.reactions` reads each viewer against their baseline) and the face's reading quality
(`QUALITY_COLUMNS`: box height in pixels, detector score, presence score, quality). Never landmarks,
crops or pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .labels import DELTA_COLUMNS, EMOTIONS, METRICS, QUALITY_COLUMNS, VALUE_COLUMNS
from .observation import Observation

KEY_COLUMNS = ("source", "frame", "t", "track_id", "seat", "x", "y", "w", "h", "emotion")
COLUMNS = KEY_COLUMNS + VALUE_COLUMNS + QUALITY_COLUMNS


def observation_columns(obs: Observation) -> dict[str, np.ndarray]:
    """One observation -> the table's columns (N rows)."""
    n = len(obs)
    cols: dict[str, np.ndarray] = {
        "source": np.full(n, obs.source, dtype=object),
        "frame": np.full(n, obs.frame, np.int64),
        "t": np.full(n, obs.t, np.float64),
        "track_id": obs.track_ids.astype(np.int64),
        "seat": obs.seats.astype(object),
        "x": obs.boxes[:, 0], "y": obs.boxes[:, 1], "w": obs.boxes[:, 2], "h": obs.boxes[:, 3],
        "emotion": np.array(obs.emotions, dtype=object),
    }
    for j, e in enumerate(EMOTIONS):
        cols[f"p_{e}"] = obs.probs[:, j]
    for j, m in enumerate(METRICS):
        cols[m] = obs.metrics[:, j]
    cols["valence"] = obs.valence
    cols["yaw"], cols["pitch"], cols["roll"] = obs.pose[:, 0], obs.pose[:, 1], obs.pose[:, 2]
    cols["attention"] = obs.attention
    for c in DELTA_COLUMNS:  # filled per viewer over time by vision.reactions, after tracking
        cols[c] = np.full(n, np.nan, np.float32)
    cols["face_px"] = obs.face_px
    cols["det_score"], cols["presence"], cols["quality"] = obs.det_score, obs.presence, obs.quality
    return cols


def empty_columns() -> dict[str, np.ndarray]:
    cols = {c: np.zeros(0, np.float32) for c in COLUMNS}
    cols.update(source=np.zeros(0, object), seat=np.zeros(0, object), emotion=np.zeros(0, object),
                frame=np.zeros(0, np.int64),
                t=np.zeros(0, np.float64), track_id=np.zeros(0, np.int64))
    return cols


def concat_columns(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not parts:
        return empty_columns()
    return {c: np.concatenate([p[c] for p in parts]) for c in COLUMNS}


class TableSink:
    """Collects observations into columns in memory (for a worker to hand back, or for tests)."""

    def __init__(self):
        self._parts: list[dict[str, np.ndarray]] = []

    def write(self, obs: Observation) -> None:
        if len(obs):
            self._parts.append(observation_columns(obs))

    def columns(self) -> dict[str, np.ndarray]:
        return concat_columns(self._parts)


def arrow_table(cols: dict[str, np.ndarray]):
    """The columns as an Arrow table (numbers as they are, NaN kept as a value; strings as `string`). Built
    from buffers (`arrow_array`): `pa.array` imports pandas to look for pandas types (0.2 s of a run)."""
    import pyarrow as pa

    return pa.Table.from_arrays([arrow_array(cols[c]) for c in COLUMNS], names=list(COLUMNS))


_ARROW_NUMBERS = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64", np.dtype(np.int64): "int64",
                  np.dtype(np.int32): "int32"}


def arrow_array(v: np.ndarray):
    """What `pa.array(v)` gives for a numeric column, and `pa.array(v.tolist(), pa.string())` for a column of
    str, built from the values' buffers; anything else (None among strings, other types) through pa.array."""
    import pyarrow as pa

    if v.dtype in _ARROW_NUMBERS and v.dtype.isnative:
        return pa.Array.from_buffers(getattr(pa, _ARROW_NUMBERS[v.dtype])(), len(v),
                                     [None, pa.py_buffer(np.ascontiguousarray(v))])
    values = v.tolist()
    if v.dtype == object and all(type(x) is str for x in values):
        encoded = [x.encode("utf-8") for x in values]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        if offsets[-1] < 2 ** 31:
            return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets.astype(np.int32)),
                                                                     pa.py_buffer(b"".join(encoded))])
    return pa.array(values, pa.string()) if v.dtype == object else pa.array(v)


class ObservationFileWriter:
    """Context-manager sink writing the observations table as Parquet or CSV, in chunks as it goes."""

    def __init__(self, path: Path, fmt: str = "parquet"):
        if fmt not in ("parquet", "csv"):
            raise ValueError("format must be 'parquet' or 'csv'")
        self.path, self.fmt, self.rows = Path(path), fmt, 0
        self._writer = None
        self._csv = None

    def write_columns(self, cols: dict[str, np.ndarray]) -> None:
        n = len(cols["frame"])
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            table = arrow_table(cols)
            if self._writer is None:
                # no embedded Arrow schema: it is a base64 blob in the file's metadata (the types read
                # back the same from Parquet's own), and a file of numbers should hold no opaque text
                self._writer = pq.ParquetWriter(str(self.path), table.schema, store_schema=False)
            if n:
                self._writer.write_table(table)
        else:
            self._write_csv(cols, n)
        self.rows += n

    def _write_csv(self, cols, n):
        import csv

        if self._csv is None:
            self._csv = open(self.path, "w", newline="")
            self._csv_writer = csv.writer(self._csv)
            self._csv_writer.writerow(COLUMNS)
        fmt = {c: (lambda v: v) if cols[c].dtype.kind in "OiU" else (lambda v: "" if v != v else f"{v:.6g}")
               for c in COLUMNS}
        for i in range(n):
            self._csv_writer.writerow([fmt[c](cols[c][i]) for c in COLUMNS])

    def close(self) -> None:
        if self._writer is None and self._csv is None:
            self.write_columns(empty_columns())  # an empty file with the schema, never no file
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._csv is not None:
            self._csv.close()
            self._csv = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
