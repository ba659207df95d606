"""`--engine ray` on a real two-node Ray cluster on this machine (bound to 127.0.0.1): the same results as
`--engine local`, a worker killed mid-job changes nothing (and doubles nothing in the database), and a node
that joins mid-run takes jobs. Marked `ray`; skipped only where ray is not installed (CI installs it)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from _bench import read_frames, write_video
from builders import FIXTURES, ROOT, run_cli

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

# the driver subprocesses connect to a loopback cluster (Ray otherwise swaps 127.0.0.1 for the host's address)
ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
       "PYTHONPATH": str(ROOT)}
NODE = dict(num_cpus=1, node_ip_address="127.0.0.1", object_store_memory=80 * 2 ** 20)


def variants(folder: Path) -> Path:
    """Four different recordings from the fixture (as is, mirrored, reversed, both) and their manifest."""
    frames, fps = read_frames(FIXTURES / "two_faces.mp4")
    rows = []
    for k, (flip, rev) in enumerate([(False, False), (True, False), (False, True), (True, True)]):
        path = folder / f"rec{k}.mp4"
        write_video(path, [cv2.flip(f, 1) if flip else f for f in (frames[::-1] if rev else frames)], fps)
        rows.append({"path": path.name, "content": "Film", "screening": f"night {k // 2}", "camera": f"cam{k % 2}"})
    pd.DataFrame(rows).to_csv(folder / "season.csv", index=False)
    return folder / "season.csv"


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    folder = tmp_path_factory.mktemp("season")
    manifest = variants(folder)
    db = f"sqlite:///{folder / 'local.db'}"
    r = run_cli("batch", manifest, "--db", db, "--out", folder / "local", "--workers", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    return manifest, db, folder / "local"


@pytest.fixture(scope="module")
def cluster():
    """A head node of one CPU; tests add a second. Shut down at the end, also on failure."""
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    # Ray's own folder inside it, and RAY_TMPDIR naming it: the cluster writes its address file into Ray's default
    # folder (RAY_TMPDIR/ray), which on a fresh machine does not exist (no earlier Ray run made /tmp/ray)
    ray_dir = os.path.join(temp, "ray")
    os.makedirs(ray_dir)
    c = None
    try:
        with mock.patch.dict(os.environ, {**ENV, "RAY_TMPDIR": temp}):  # restored as it was on the way out
            c = Cluster(initialize_head=True, head_node_args=dict(NODE, include_dashboard=False, temp_dir=ray_dir))
            yield c
    finally:
        if c is not None:
            c.shutdown()
        shutil.rmtree(temp, ignore_errors=True)

def raylets(c) -> set[int]:
    return {p.process.pid for n in [c.head_node, *c.worker_nodes]
            for p in n.all_processes.get(ray._private.ray_constants.PROCESS_TYPE_RAYLET, [])}


def busy_workers(c) -> list[int]:
    """Pids of this cluster's actors that are running a job (Ray titles them ray::JobWorker.run)."""
    parents, found = raylets(c), []
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes()
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if cmd.startswith(b"ray::JobWorker.run") and ppid in parents:
            found.append(int(d.name))
    return found


def start_batch(c, manifest, out, db):
    return subprocess.Popen([sys.executable, "-m", "service.cli", "batch", str(manifest), "--db", db, "--out",
                             str(out), "--engine", "ray", "--address", c.address], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV})


def wait_for(predicate, proc, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    return None


def finish(proc, timeout=300):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err
    return out


def track_seconds(db: str) -> pd.DataFrame:
    engine = create_engine(db)
    with engine.connect() as conn:
        ts = pd.read_sql(text("SELECT * FROM track_second"), conn)
        names = pd.read_sql(text("SELECT id, labels FROM screening"), conn)
    engine.dispose()
    names["screening"] = names["labels"].map(lambda s: json.loads(s)["name"] if isinstance(s, str)
                                             else s["name"])
    ts = ts.merge(names[["id", "screening"]], left_on="screening_id", right_on="id")
    ts = ts.drop(columns=[c for c in ts.columns if c in ("id", "id_x", "id_y", "screening_id")])
    return ts.sort_values(["screening", "camera", "track_id", "second"]).reset_index(drop=True)


def same_as_local(season, out, db):
    _, local_db, local_out = season
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(local_out))  # same rows, same track ids
    a, b = track_seconds(db), track_seconds(local_db)
    assert len(a) == len(b) and (a[["screening", "camera", "track_id", "second", "n"]] ==
                                 b[["screening", "camera", "track_id", "second", "n"]]).all().all()
    numbers = [c for c in a.columns if c.startswith(("s_", "q_"))]
    np.testing.assert_allclose(a[numbers].to_numpy(float), b[numbers].to_numpy(float), rtol=1e-9, atol=1e-9)


def test_a_node_joining_mid_run_takes_jobs(cluster, season, tmp_path):
    manifest = season[0]
    db = f"sqlite:///{tmp_path / 'ray.db'}"
    proc = start_batch(cluster, manifest, tmp_path / "out", db)
    try:
        assert wait_for(lambda: busy_workers(cluster), proc), "no job started on the head node"
        cluster.add_node(**NODE)  # joins while the head works on the first recording
        finish(proc)
    finally:
        proc.kill()
    nodes = pd.read_csv(tmp_path / "out" / "_summary.csv")["nodes"]
    assert nodes.nunique() == 2, nodes.tolist()  # both nodes ran recordings
    same_as_local(season, tmp_path / "out", db)


def test_a_worker_killed_mid_job_changes_nothing(cluster, season, tmp_path):
    if not cluster.worker_nodes:
        cluster.add_node(**NODE)
    manifest = season[0]
    db = f"sqlite:///{tmp_path / 'ray.db'}"
    proc = start_batch(cluster, manifest, tmp_path / "out", db)
    try:
        victims = wait_for(lambda: busy_workers(cluster), proc)
        assert victims, "no job was running"
        os.kill(victims[0], signal.SIGKILL)
        finish(proc)
    finally:
        proc.kill()
    same_as_local(season, tmp_path / "out", db)  # the job was retried; nothing doubled in the database
    r = run_cli("batch", manifest, "--db", db, "--out", tmp_path / "out", "--engine", "local")
    assert r.returncode == 0 and "0 recording(s) analysed, 4 already complete" in r.stdout, r.stderr


def test_analyze_engine_ray_equals_local(cluster, season, tmp_path):
    folder = season[0].parent
    inputs = [folder / "rec0.mp4", folder / "rec3.mp4"]
    local = run_cli("analyze", *inputs, "--out", tmp_path / "local", "--workers", "1", "--quiet")
    assert local.returncode == 0, local.stderr
    r = subprocess.run([sys.executable, "-m", "service.cli", "analyze", *map(str, inputs), "--out",
                        str(tmp_path / "ray"), "--engine", "ray", "--address", cluster.address, "--quiet"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **ENV})
    assert r.returncode == 0, r.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ray" / "observations.parquet"),
                                  pd.read_parquet(tmp_path / "local" / "observations.parquet"))
    a, b = pd.read_csv(tmp_path / "ray" / "curves.csv"), pd.read_csv(tmp_path / "local" / "curves.csv")
    pd.testing.assert_frame_equal(a, b, rtol=1e-9, atol=1e-9)
