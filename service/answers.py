"""The API's answers about curves: a content's curve, two groups compared, the moments that landed, a
screening against its norms. Columnar (one list per field, index i = bucket i), numbers only; every figure is
summed from whole atoms of at least min_audience faces (service.store)."""
from __future__ import annotations

from sqlmodel import Field, SQLModel

Ids = list[int]  # screening ids
Times = list[float]  # bucket starts, seconds from the content's start
Counts = list[int | None]  # per bucket; null where suppressed
Values = list[float | None]  # per bucket; null where there is no figure
PerMetric = dict[str, Values]


class Curves(SQLModel):
    """Columnar: t[i], n[i], mean[metric][i], ci95[metric][i] describe bucket i (null: no data, or a
    single face for a CI). Every figure is summed from whole atoms (one camera of one screening in one
    second) of at least min_audience faces; smaller atoms are left out of every answer. The unit of a
    bucket is the face-second: n[i] counts the face-seconds of its released atoms (at 1 s: faces)."""

    content_id: int
    bucket_s: float
    screenings: Ids
    metrics: list[str]
    t: Times
    n: Counts = Field(description="face-seconds of the released atoms (at 1 s: faces); null where "
                                  "suppressed: fewer than min_audience")
    mean: PerMetric
    ci95: PerMetric
    suppressed: list[bool] = Field(default_factory=list, description="bucket i had faces, but only in atoms of "
                                                                     "fewer than min_audience: n, mean and CI are null")
    min_audience: int = Field(1, description="atoms (a camera of a screening in one second) with fewer faces "
                                             "are left out of every answer")


class Comparison(SQLModel):
    """A - B per bucket where both selections have faces: diff[metric][i] with a Welch 95% half-width."""

    content_id: int
    bucket_s: float
    a_screenings: Ids
    b_screenings: Ids
    metrics: list[str]
    t: Times
    n_a: Counts
    n_b: Counts
    diff: PerMetric
    ci95: PerMetric
    suppressed: list[bool] = Field(default_factory=list, description="either side of bucket i has faces only in "
                                                                     "atoms of fewer than min_audience: diff and CI "
                                                                     "are null (and that side's n)")
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
    screenings: Ids
    moments: list[Moment]


class Norms(SQLModel):
    """z[i]: how far the screening's mean at t[i] lies from the other screenings' means, in their SDs."""

    content_id: int
    screening_id: int
    metric: str
    others: Ids
    t: Times
    value: list[float]
    norm_mean: list[float]
    norm_sd: Values
    z: Values
    min_audience: int = Field(1, description="a camera's second with fewer faces is left out of every value")
