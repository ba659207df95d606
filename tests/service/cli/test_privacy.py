"""Numbers only: everything an analysis, a live run and the service write is scanned for image-like
content (encoded image signatures, raw or base64, large binary blobs, long numeric arrays); the one
image written, curves.png, must be the chart matplotlib drew from the numbers."""
import json
import re
import sqlite3
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

from builders import FIXTURES, run_cli
from vision.table import COLUMNS

SIGNATURES = {  # raw file signatures of image formats (4+ bytes: no chance hits in compressed data)
    "jpeg": re.compile(rb"\xff\xd8\xff[\xdb\xe0\xe1\xe2\xe3\xe8\xee\xfe]"),
    "png": re.compile(re.escape(b"\x89PNG\r\n\x1a\n")),
    "gif": re.compile(rb"GIF8[79]a"),
    "webp": re.compile(rb"RIFF....WEBP", re.S),
    "tiff": re.compile(rb"II\*\x00|MM\x00\*"),
    "jpeg2000": re.compile(re.escape(b"\x00\x00\x00\x0cjP  ")),
}
TEXT_SIGNS = {  # the same, base64-encoded or as data URIs, in text
    "base64 jpeg": re.compile(rb"/9j/[0-9A-Za-z+/]{20}"),
    "base64 png": re.compile(rb"iVBORw0KGgo"),
    "base64 gif": re.compile(rb"R0lGOD[lh]"),
    "data uri": re.compile(rb"data:image/", re.I),
    "long base64": re.compile(rb"[0-9A-Za-z+/=]{2000,}"),
}
MAX_TEXT = 4096  # no stored text value is longer (labels, names, JSON details are short)


def png_software(data: bytes) -> str:
    """The tEXt 'Software' entry of a PNG, and check it holds a single image (no embedded others)."""
    pos, software = 8, ""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt" and body.startswith(b"Software\x00"):
            software = body[9:].decode()
        pos += 12 + length
    return software


def scan_file(path: Path) -> list[str]:
    data = path.read_bytes()
    found = []
    if path.name == "curves.png":
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if "matplotlib" not in png_software(data) or image.shape[:2] != (935, 1320):
            found.append(f"{path.name}: a PNG that is not the curves chart")
        pixels = zlib.decompress(b"".join(  # the chart's own pixels hide no other image signature
            data[p + 8:p + 8 + struct.unpack(">I", data[p:p + 4])[0]] for p in
            [m.start() - 4 for m in re.finditer(b"IDAT", data)]))
        data = pixels
    for name, pattern in SIGNATURES.items():
        if pattern.search(data):
            found.append(f"{path.name}: {name} signature")
    for name, pattern in TEXT_SIGNS.items():
        if pattern.search(data):
            found.append(f"{path.name}: {name}")
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        if table.column_names != list(COLUMNS):
            found.append(f"{path.name}: columns beyond the observation contract")
        for column in table.columns:
            if column.type.num_fields or str(column.type).startswith(("list", "binary", "large")):
                found.append(f"{path.name}: nested or binary column")
    if path.suffix == ".db" or data[:16] == b"SQLite format 3\x00":
        found += scan_sqlite(path)
    return found


def scan_sqlite(path: Path) -> list[str]:
    found = []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        for row in db.execute(f'SELECT * FROM "{table}"'):
            for value in row:
                if isinstance(value, bytes) and len(value) > 64:
                    found.append(f"{path.name}:{table}: binary blob of {len(value)} bytes")
                if isinstance(value, str) and len(value) > MAX_TEXT and table != "item":
                    found.append(f"{path.name}:{table}: text of {len(value)} characters")
                if isinstance(value, str) and table == "item":  # the live spool: JSON of numbers
                    body = json.loads(value)
                    if set(body) - {"screening", "camera", "columns", "covered", "captured", "start_s", "end_s",
                                    "reason"}:
                        found.append(f"{path.name}: spool item with unexpected fields")
    db.close()
    return found


def scan(folder: Path) -> list[str]:
    return [f for p in sorted(folder.rglob("*")) if p.is_file() for f in scan_file(p)]


def test_the_scanner_finds_planted_images(tmp_path):
    face = cv2.imread(str(FIXTURES / "images" / "astronaut.jpg"))
    ok, jpg = cv2.imencode(".jpg", face[:64, :64])
    (tmp_path / "leak.bin").write_bytes(b"\x00" * 100 + jpg.tobytes())
    import base64

    (tmp_path / "leak.json").write_text(json.dumps({"x": base64.b64encode(jpg.tobytes()).decode()}))
    db = sqlite3.connect(tmp_path / "leak.db")
    db.execute("CREATE TABLE t (b BLOB)")
    db.execute("INSERT INTO t VALUES (?)", (np.zeros(478 * 3, np.float32).tobytes(),))
    db.commit()
    db.close()
    found = " | ".join(scan(tmp_path))
    assert "leak.bin: jpeg signature" in found and "leak.json: base64 jpeg" in found and "binary blob" in found


def test_analysis_live_run_and_service_write_numbers_only(tmp_path):
    from sqlmodel import Session

    from service.db import make_engine, migrate
    from service.models import Content, Screening

    db = tmp_path / "service.db"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    with Session(engine) as session:
        content = Content(title="clip", duration_s=10)
        session.add(content)
        session.commit()
        screening = Screening(content_id=content.id, labels={"cut": "A"})
        session.add(screening)
        session.commit()
        sid = screening.id
    clip = FIXTURES / "two_faces.mp4"
    r = run_cli("analyze", clip, "--out", tmp_path / "analysis", "--db", f"sqlite:///{db}", "--screening", sid)
    assert r.returncode == 0, r.stderr
    r = run_cli("analyze", FIXTURES / "images", "--out", tmp_path / "stills", "--format", "csv")
    assert r.returncode == 0, r.stderr
    r = run_cli("live", "--source", clip, "--screening", sid, "--db", f"sqlite:///{db}", "--camera", "cam2",
                "--spool", tmp_path / "spool" / "live.spool.db", "--out", tmp_path / "live", "--metrics-port", -1)
    assert r.returncode == 0, r.stderr
    r = run_cli("keys", "--db", f"sqlite:///{db}", "create", "--name", "ops", "--scope", "admin")
    assert r.returncode == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert {"analysis/observations.parquet", "analysis/report.html", "analysis/curves.png", "stills/observations.csv",
            "live/observations.parquet", "service.db", "spool/live.spool.db"} <= set(written), written
    assert scan(tmp_path) == []
