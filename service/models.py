"""Tables and API schemas. Contents and screenings are SQLModel tables with Create / Public schemas;
the reaction statistics are two SQLAlchemy Core tables on the same metadata (one float column per
value, generated from `vision.labels.VALUE_COLUMNS`, so SQL does the sums). Two counts per track-second:
samples of the face present (`n`) and samples with an expression read (`n_read`); expression sums are
over the read samples, attention's (`vision.labels.PRESENT_COLUMNS`) over every present one."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from sqlalchemy import JSON as SA_JSON
from sqlalchemy import Column, DateTime, Float, ForeignKey, Integer, String, Table
from sqlmodel import JSON, Field, SQLModel

from .stats import VALUES

SCHEMA_VERSION = 5  # 1: contents, screenings, track/camera seconds; 2: + content_second rollup; 3: + revisions;
#                     4: + camera gaps and live source states; 5: + API keys (service.auth)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ContentBase(SQLModel):
    title: str = Field(min_length=1, max_length=300)
    duration_s: float = Field(gt=0, description="length of the content in seconds")


class Content(ContentBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=_now)


class ContentCreate(ContentBase):
    pass


class ContentUpdate(SQLModel):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    duration_s: float | None = Field(default=None, gt=0)


class ContentPublic(ContentBase):
    id: int
    created_at: datetime


class ScreeningBase(SQLModel):
    venue: str = Field(default="", max_length=300)
    started_at: datetime | None = None
    content_offset_s: float = Field(default=0.0, description="seconds between recording start and content start")
    labels: dict[str, str] = Field(default_factory=dict, sa_type=JSON,
                                   description="free segment labels, e.g. {\"cut\": \"B\", \"audience\": \"under30\"}")


class Screening(ScreeningBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    content_id: int = Field(foreign_key="content.id", index=True)
    created_at: datetime = Field(default_factory=_now)


class ScreeningCreate(ScreeningBase):
    content_id: int


class ScreeningUpdate(SQLModel):
    """Venue, start time and labels can change; the content and the offset (which the stored seconds
    depend on) cannot."""

    venue: str | None = Field(default=None, max_length=300)
    started_at: datetime | None = None
    labels: dict[str, str] | None = None


class ScreeningPublic(ScreeningBase):
    id: int
    content_id: int
    created_at: datetime


class SchemaVersion(SQLModel, table=True):
    id: int = Field(default=1, primary_key=True)
    version: int


def _sums(*prefixes: str) -> list[Column]:
    """One float column per value and prefix: s_/q_ (sum, sum of squares of samples) or m_/mm_ (sum,
    sum of squares of per-face means)."""
    return [Column(f"{p}_{v}", Float, nullable=False) for p in prefixes for v in VALUES]


track_second = Table(
    "track_second", SQLModel.metadata,
    Column("screening_id", Integer, ForeignKey("screening.id", ondelete="CASCADE"), primary_key=True),
    Column("camera", String(300), primary_key=True),
    Column("track_id", Integer, primary_key=True),
    Column("second", Integer, primary_key=True),
    Column("n", Integer, nullable=False),  # samples of the face present
    Column("n_read", Integer, nullable=False),  # ...of them with an expression read (quality >= the minimum)
    *_sums("s", "q"),
)

content_second = Table(  # camera_second summed over every screening of a content: the default curve
    "content_second", SQLModel.metadata,
    Column("content_id", Integer, ForeignKey("content.id", ondelete="CASCADE"), primary_key=True),
    Column("second", Integer, primary_key=True),
    Column("k", Integer, nullable=False),
    Column("k_read", Integer, nullable=False),  # faces with an expression read (the k of expression values)
    *_sums("m", "mm"),
)

content_revision = Table(  # bumped by every change to a content's statistics: the key of cached curves
    "content_revision", SQLModel.metadata,
    Column("content_id", Integer, ForeignKey("content.id", ondelete="CASCADE"), primary_key=True),
    Column("revision", Integer, nullable=False),
)

camera_gap = Table(  # a stretch of content time a camera delivered nothing: missing data, not zero faces
    "camera_gap", SQLModel.metadata,
    Column("screening_id", Integer, ForeignKey("screening.id", ondelete="CASCADE"), primary_key=True),
    Column("camera", String(300), primary_key=True),
    Column("start_s", Float, primary_key=True),
    Column("end_s", Float, nullable=False),
    Column("reason", String(300), nullable=False),
)

live_source = Table(  # the last state a live process reported for one of its cameras
    "live_source", SQLModel.metadata,
    Column("screening_id", Integer, ForeignKey("screening.id", ondelete="CASCADE"), primary_key=True),
    Column("camera", String(300), primary_key=True),
    Column("state", String(40), nullable=False),
    Column("detail", SA_JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

camera_second = Table(
    "camera_second", SQLModel.metadata,
    Column("screening_id", Integer, ForeignKey("screening.id", ondelete="CASCADE"), primary_key=True),
    Column("camera", String(300), primary_key=True),
    Column("second", Integer, primary_key=True),
    Column("k", Integer, nullable=False),
    Column("k_read", Integer, nullable=False),
    *_sums("m", "mm"),
)


class Curves(SQLModel):
    """Columnar: t[i], n[i], mean[metric][i], ci95[metric][i] describe bucket i (null: no data, or a
    single face for a CI)."""

    content_id: int
    bucket_s: float
    screenings: list[int]
    metrics: list[str]
    t: list[float]
    n: list[int]
    n_present: list[int] = Field(default_factory=list, description="faces present in bucket i, read or not (n: "
                                                                   "faces with an expression read; attention "
                                                                   "averages over n_present)")
    mean: dict[str, list[float | None]]
    ci95: dict[str, list[float | None]]
    suppressed: list[bool] = Field(default_factory=list, description="bucket i has fewer faces than min_audience: "
                                                                     "its mean and CI are null")
    min_audience: int = Field(1, description="buckets with fewer distinct faces are suppressed")


class Comparison(SQLModel):
    """A - B per bucket where both selections have faces: diff[metric][i] with a Welch 95% half-width."""

    content_id: int
    bucket_s: float
    a_screenings: list[int]
    b_screenings: list[int]
    metrics: list[str]
    t: list[float]
    n_a: list[int]
    n_b: list[int]
    diff: dict[str, list[float | None]]
    ci95: dict[str, list[float | None]]
    suppressed: list[bool] = Field(default_factory=list, description="either side of bucket i has fewer faces "
                                                                     "than min_audience: diff and CI are null")
    min_audience: int = 1


class Moment(SQLModel):
    t: float  # the peak's bucket
    value: float
    prominence: float
    start: float  # extent at half prominence
    end: float
    duration_s: float


class Moments(SQLModel):
    content_id: int
    metric: str
    bucket_s: float
    screenings: list[int]
    moments: list[Moment]


class Norms(SQLModel):
    """z[i]: how far the screening's mean at t[i] lies from the other screenings' means, in their SDs."""

    content_id: int
    screening_id: int
    metric: str
    others: list[int]
    t: list[float]
    value: list[float]
    norm_mean: list[float]
    norm_sd: list[float | None]
    z: list[float | None]
    min_audience: int = Field(1, description="seconds where a screening had fewer faces are left out")


class StatsBatch(SQLModel):
    """One camera's per-track-second statistics: `columns` (name -> list, the compact form) or `rows`
    (a list of objects); each row/position holds track_id, second, n, s_<value> and q_<value> for
    every value (sum and sum of squares of its n samples)."""

    camera: str = Field(min_length=1, max_length=300)
    columns: dict[str, list[float]] | None = None
    rows: list[dict] | None = None
    covered: list[int] | None = Field(default=None, max_length=100_000, description=(
        "seconds of content time this camera analysed, faces or not: a covered second without faces has "
        "n = 0 in the curve, a second neither covered nor holding rows is missing (a gap)"))


class GapIn(SQLModel):
    """A stretch of content time one camera delivered no frames (dropped, reconnecting)."""

    camera: str = Field(min_length=1, max_length=300)
    start_s: float
    end_s: float
    reason: str = Field(default="", max_length=300)


class GapPublic(GapIn):
    screening_id: int


class SourceStateIn(SQLModel):
    """What a live process reports about one camera (see `audience live`)."""

    state: Literal["starting", "running", "reconnecting", "stopped"]
    detail: dict = Field(default_factory=dict, description="analysis rate, drops, latency, spool depth, ...")


class SourceStatePublic(SourceStateIn):
    screening_id: int
    camera: str
    updated_at: datetime
    stale: bool = Field(description="no report for 30 s: the live process is down or cut off")


class IngestResult(SQLModel):
    inserted: int
    unchanged: int
