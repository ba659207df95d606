"""Tables and API schemas. Contents and screenings are SQLModel tables with Create / Public schemas;
the reaction statistics are two SQLAlchemy Core tables on the same metadata (one float column per
value, generated from `vision.labels.VALUE_COLUMNS`, so SQL does the sums)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import Field as PydanticField
from pydantic import StringConstraints, TypeAdapter
from sqlalchemy import JSON as SA_JSON
from sqlalchemy import Column, DateTime, Float, ForeignKey, Index, Integer, String, Table
from sqlmodel import JSON, Field, SQLModel

from vision.stats import VALUES

SCHEMA_VERSION = 6  # 1: contents, screenings, track/camera seconds; 2: + content_second rollup; 3: + revisions;
#                     4: + camera gaps and live source states; 5: + API keys (service.auth);
#                     6: ids never reused (SQLite AUTOINCREMENT), auth_state (keys stay required),
#                        <value>_delta columns, the audience model's model_fit / model_viewer,
#                        content_rollup (the content-wide sums of the atoms of >= ROLLUP_MIN_K faces)
NEVER_REUSED = {"sqlite_autoincrement": True}  # a deleted row's id is never given to a new one (SQLite reuses
#                                                 the largest otherwise; PostgreSQL's sequences never do)


MAX_SECONDS = 10_000_000  # ~115 days: content times, offsets and durations beyond are refused (422)
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
LabelValue = Annotated[str, StringConstraints(max_length=200)]
MAX_LABELS = 32


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ContentBase(SQLModel):
    title: str = Field(min_length=1, max_length=300)
    duration_s: float = Field(gt=0, le=MAX_SECONDS, description="length of the content in seconds")


class Content(ContentBase, table=True):
    __table_args__ = NEVER_REUSED
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=_now)


class ContentCreate(ContentBase):
    pass


class ContentUpdate(SQLModel):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    duration_s: float | None = Field(default=None, gt=0, le=MAX_SECONDS)


class ContentPublic(ContentBase):
    id: int
    created_at: datetime


class ScreeningBase(SQLModel):
    venue: str = Field(default="", max_length=300)
    started_at: datetime | None = None
    content_offset_s: float = Field(default=0.0, ge=-MAX_SECONDS, le=MAX_SECONDS,
                                    description="seconds between recording start and content start")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, sa_type=JSON, max_length=MAX_LABELS,
                                               description="free segment labels, e.g. {\"cut\": \"B\", \"audience\": "
                                                           "\"under30\"}: at most 32, keys up to 64 and values up "
                                                           "to 200 characters")


class Screening(ScreeningBase, table=True):
    __table_args__ = NEVER_REUSED
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
    labels: dict[LabelKey, LabelValue] | None = Field(default=None, max_length=MAX_LABELS)


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
    Column("n", Integer, nullable=False),
    *_sums("s", "q"),
)

content_second = Table(  # camera_second summed over every screening of a content: the default curve
    "content_second", SQLModel.metadata,
    Column("content_id", Integer, ForeignKey("content.id", ondelete="CASCADE"), primary_key=True),
    Column("second", Integer, primary_key=True),
    Column("k", Integer, nullable=False),
    *_sums("m", "mm"),
)

ROLLUP_MIN_K = 10  # content_rollup holds the atoms of at least this many faces: it serves min_audience <= 10

content_rollup = Table(  # camera_second atoms of >= ROLLUP_MIN_K faces (or none: covered seconds), summed over
    "content_rollup", SQLModel.metadata,  # a content's screenings: no left-out atom is ever in it (store.curve_sums)
    Column("content_id", Integer, ForeignKey("content.id", ondelete="CASCADE"), primary_key=True),
    Column("second", Integer, primary_key=True),
    Column("k", Integer, nullable=False),
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

camera_second = Table(  # an atom of every released statistic: one camera of a screening in one second
    "camera_second", SQLModel.metadata,
    Column("screening_id", Integer, ForeignKey("screening.id", ondelete="CASCADE"), primary_key=True),
    Column("camera", String(300), primary_key=True),
    Column("second", Integer, primary_key=True),
    Column("k", Integer, nullable=False),
    *_sums("m", "mm"),
    # where the atoms below the minimum audience size lie, found without reading any atom (store.curve_sums)
    Index("ix_camera_second_screening_k", "screening_id", "k", "second"),
)


class StatsBatch(SQLModel):
    """One camera's per-track-second statistics: `columns` (name -> list, the compact form) or `rows`
    (a list of objects); each row/position holds track_id, second, n, s_<value> and q_<value> for
    every value (sum and sum of squares of its n samples)."""

    camera: str = Field(min_length=1, max_length=300)
    columns: dict[str, list[float]] | None = None
    rows: list[dict] | None = None
    covered: list[Annotated[int, Field(ge=-MAX_SECONDS, le=MAX_SECONDS)]] | None = Field(
        default=None, max_length=100_000, description=(
        "seconds of content time this camera analysed, faces or not: a covered second without faces has "
        "n = 0 in the curve, a second neither covered nor holding rows is missing (a gap)"))


class GapIn(SQLModel):
    """A stretch of content time one camera delivered no frames (dropped, reconnecting)."""

    camera: str = Field(min_length=1, max_length=300)
    start_s: float = Field(ge=-MAX_SECONDS, le=MAX_SECONDS)
    end_s: float = Field(ge=-MAX_SECONDS, le=MAX_SECONDS)
    reason: str = Field(default="", max_length=300)


class GapPublic(GapIn):
    screening_id: int


DetailKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
DetailValue = bool | int | Annotated[float, PydanticField(allow_inf_nan=False)] | None
SourceDetail = Annotated[dict[DetailKey, DetailValue], PydanticField(max_length=32)]
_DETAIL = TypeAdapter(SourceDetail)


def clean_detail(stored) -> dict:
    """A stored detail as it may be shown: the entries that validate (rows stored before detail was
    validated may hold anything)."""
    out = {}
    for key, value in (stored.items() if isinstance(stored, dict) else ()):
        try:
            out.update(_DETAIL.validate_python({key: value}))
        except ValueError:
            continue
    return dict(list(out.items())[:32])


class SourceStateIn(SQLModel):
    """What a live process reports about one camera (see `audience live`)."""

    state: Literal["starting", "running", "reconnecting", "stopped"]
    detail: SourceDetail = Field(default_factory=dict, description=(
        "the process's figures (analysis rate, drops, latency, spool depth): at most 32 entries, names of "
        "lower-case letters, digits and _ (up to 40), values numbers, booleans or null"))


class SourceStatePublic(SourceStateIn):
    screening_id: int
    camera: str
    updated_at: datetime
    stale: bool = Field(description="no report for 30 s: the live process is down or cut off")


class IngestResult(SQLModel):
    inserted: int
    unchanged: int
