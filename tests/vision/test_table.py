"""vision.table: the Arrow table built from buffers equals the one pa.array builds, value for value."""
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from builders import ROOT, make_observation
from vision.table import COLUMNS, arrow_array, arrow_table, concat_columns, empty_columns, observation_columns


def stock_table(cols):
    return pa.table({c: pa.array(cols[c].tolist(), pa.string()) if cols[c].dtype == object else pa.array(cols[c])
                     for c in COLUMNS})


def some_columns():
    rng = np.random.default_rng(1)
    parts = []
    for k in range(5):
        obs = make_observation(n=k % 3 + 1, t=k * 0.04, frame=k, source="caméra 1 ✓",
                               probs=rng.random((k % 3 + 1, 7)).astype(np.float32),
                               track_ids=np.arange(k % 3 + 1), labels=np.full(k % 3 + 1, k % 7 - 1))
        parts.append(observation_columns(obs))
    return concat_columns(parts)


@pytest.mark.parametrize("cols", [some_columns(), empty_columns()], ids=["rows", "empty"])
def test_arrow_table_equals_pa_array_s(cols):
    fast, stock = arrow_table(cols), stock_table(cols)
    assert fast.schema == stock.schema and fast.num_rows == stock.num_rows
    for c in COLUMNS:  # Table.equals counts NaN as unequal to itself: compare values, NaN equal to NaN
        a, b = fast.column(c), stock.column(c)
        if pa.types.is_string(a.type):
            assert a.to_pylist() == b.to_pylist()
        else:
            np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
            assert a.to_numpy().dtype == b.to_numpy().dtype
    assert np.isnan(fast.column("valence").to_numpy()).all() or len(fast) == 0  # NaN kept as a value
    assert all(fast.column(c).null_count == 0 for c in COLUMNS)


def test_arrow_array_of_other_columns_goes_through_pa_array():
    assert stock_table(some_columns()).equals(stock_table(some_columns())) is False  # the NaN, not a difference
    assert arrow_array(np.array(["a", None], dtype=object)).equals(pa.array(["a", None], pa.string()))
    assert arrow_array(np.array([True, False])).equals(pa.array(np.array([True, False])))
    strided = np.arange(10, dtype=np.float32)[::2]
    assert arrow_array(strided).equals(pa.array(strided))


def test_writing_the_table_does_not_import_pandas(tmp_path):
    code = ("import sys; from vision.table import ObservationFileWriter, empty_columns\n"
            f"w = ObservationFileWriter(__import__('pathlib').Path({str(tmp_path / 'o.parquet')!r}))\n"
            "w.write_columns(empty_columns()); w.close(); print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.stdout.strip() == "False"
