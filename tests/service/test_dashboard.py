"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a running service
(uvicorn on loopback) with data in it. A screenshot is saved under test-output/ (a CI artefact)."""
import os
import shutil
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from builders import ROOT, fake_observations, stat_rows
from vision.stats import as_lists, track_seconds

OUTPUT = Path(os.environ.get("AUDIENCE_TEST_OUTPUT", ROOT / "test-output"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide Debian's chromium (.ci/run installs it)")
        pytest.skip("no chromium on this machine")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Server:
    def __init__(self, db_path):
        import uvicorn

        from service.app import create_app
        from service.db import make_engine

        self.app = create_app(make_engine(f"sqlite:///{db_path}"))
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            pass
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def wait_for(page, expression, timeout=15.0):
    """page.wait_for_function without its in-page eval, which the service's Content-Security-Policy (no
    'unsafe-eval') forbids: the expression is polled through page.evaluate (DevTools, outside the policy)."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(50)


def post_screening(url, cid, labels, seed, seconds=60, happy_at=None):
    s = httpx.post(f"{url}/api/v1/screenings", json={"content_id": cid, "labels": labels}).json()
    obs = fake_observations(n_tracks=6, seconds=seconds, per_second=2, seed=seed)
    t = obs["t"]
    bump = np.zeros_like(t) if happy_at is None else np.exp(-((t - happy_at) ** 2) / 8)
    obs["p_happiness"] = (0.2 + 0.1 * obs["p_happiness"] + 0.6 * bump).astype(np.float32)
    r = httpx.post(f"{url}/api/v1/screenings/{s['id']}/stats", json={"camera": "cam1", "columns": as_lists(track_seconds(obs))})
    assert r.status_code == 200, r.text
    return s["id"]


def test_dashboard_draws_curves_moments_comparison_norms_and_live(browser, tmp_path):
    with Server(tmp_path / "d.db") as srv:
        cid = httpx.post(f"{srv.url}/api/v1/contents", json={"title": "Trailer", "duration_s": 60}).json()["id"]
        ids = [post_screening(srv.url, cid, {"cut": "A"}, 1, happy_at=20),
               post_screening(srv.url, cid, {"cut": "B"}, 2, happy_at=40),
               post_screening(srv.url, cid, {"cut": "A"}, 3, happy_at=21)]
        live_id = httpx.post(f"{srv.url}/api/v1/screenings", json={"content_id": cid, "labels": {"cut": "B"}}).json()["id"]
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        outside = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(srv.url) else None)
        page.goto(srv.url + "/")
        page.wait_for_selector("body[data-state=ready]")
        assert page.locator("#content option").count() == 1
        # the curve: one point per second of data, with a CI band, and the faces behind each second
        means = page.evaluate("document.getElementById('chart').data.filter(d => d.meta === 'mean').map(d => d.x.length)")
        assert means == [60]
        assert page.evaluate("document.getElementById('chart').data.filter(d => d.meta === 'band').length") == 2
        assert page.evaluate("document.getElementById('faces').data[0].y[0]") == 18  # 3 screenings x 6 faces
        # moments are listed with their times; clicking one moves the cursor there
        items = page.locator("#moments li")
        assert items.count() >= 2
        first_t = float(items.first.get_attribute("data-t"))
        assert 18 <= first_t <= 42
        items.nth(1).click()
        second_t = float(items.nth(1).get_attribute("data-t"))
        cursor = page.evaluate("document.getElementById('chart').layout.shapes.filter(s => s.name === 'cursor').map(s => s.x0)")
        assert cursor == [second_t]
        assert "faces" in page.inner_text("#readout")
        # comparison: cut A against cut B overlays two series
        page.select_option("#compare", "label:cut")
        page.wait_for_selector("body[data-state=ready]")
        names = page.evaluate("document.getElementById('chart').data.filter(d => d.meta === 'mean').map(d => d.name)")
        assert names == ["cut=A", "cut=B"]
        # reaction mode: the same metric read against each viewer's own baseline (its _delta twin)
        asked = []
        page.on("request", lambda r: asked.append(r.url) if "/curves" in r.url else None)
        page.check("#reaction")
        page.wait_for_selector("body[data-state=ready]")
        assert any("metrics=p_happiness_delta" in u for u in asked)
        title = page.evaluate("document.getElementById('chart').layout.yaxis.title.text")
        assert "reaction" in title and "Happiness" in title
        assert page.locator("#metric option[value$=_delta]").count() == 0  # a mode, not 13 more metrics
        page.uncheck("#reaction")
        page.wait_for_selector("body[data-state=ready]")
        page.select_option("#metric", "valence")
        page.wait_for_selector("body[data-state=ready]")
        assert "valence" in page.get_attribute("#export-csv", "href")
        assert page.request.get(srv.url + page.get_attribute("#export-csv", "href")).status == 200
        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)
        # norms: a screening against the others
        page.click("#tab-norms")
        page.select_option("#norm-screening", str(ids[1]))
        wait_for(page, "document.getElementById('norm-chart').data && "
                       "document.getElementById('norm-chart').data[0].x.length === 60")
        page.click("#tab-curve")
        # live: following a screening while data arrives
        page.select_option("#live-screening", str(live_id))
        page.check("#live")
        obs = fake_observations(n_tracks=4, seconds=10, per_second=2, seed=9)
        rows = stat_rows(track_seconds(obs))
        httpx.post(f"{srv.url}/api/v1/screenings/{live_id}/stats",
                   json={"camera": "cam1", "rows": [r for r in rows if r["second"] < 5]})
        wait_for(page, "document.body.dataset.live === '5'")
        httpx.post(f"{srv.url}/api/v1/screenings/{live_id}/stats",
                   json={"camera": "cam1", "rows": [r for r in rows if r["second"] >= 5]})
        wait_for(page, "document.body.dataset.live === '10'")
        httpx.put(f"{srv.url}/api/v1/screenings/{live_id}/sources/cam1", json={"state": "reconnecting"})
        page.wait_for_selector("#sources .badge.reconnecting", timeout=15000)
        page.screenshot(path=str(OUTPUT / "dashboard-live.png"), full_page=True)
        assert outside == []  # nothing from a CDN or anywhere else: the page works offline
        assert page.locator("#banner").is_hidden()


def test_dashboard_explains_empty_states_and_errors(browser, tmp_path):
    with Server(tmp_path / "e.db") as srv:
        page = browser.new_page()
        page.goto(srv.url + "/")
        page.wait_for_selector("body[data-state=empty]")
        assert "No contents yet" in page.inner_text("#empty")
        cid = httpx.post(f"{srv.url}/api/v1/contents", json={"title": "New", "duration_s": 30}).json()["id"]
        page.goto(srv.url + "/")
        page.wait_for_selector("body[data-state=ready]")
        assert "no screenings" in page.inner_text("#chart-note").lower()
        httpx.post(f"{srv.url}/api/v1/screenings", json={"content_id": cid})
        page.reload()
        page.wait_for_selector("body[data-state=ready]")
        assert "no reaction data" in page.inner_text("#chart-note").lower()
    # the service goes away: the page says so instead of failing silently
    page.select_option("#bucket", "5")
    page.wait_for_selector("body[data-state=error]")
    assert "cannot be reached" in page.inner_text("#banner")


def test_report_html_is_self_contained_and_complete(browser, tmp_path):
    import json
    import re

    from builders import FIXTURES, run_cli

    r = run_cli("analyze", FIXTURES / "two_faces.mp4", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "report.html").read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    # nothing to fetch: no external script, style, image or font
    assert not re.search(r'(src|href)\s*=\s*["\'](https?:)?//', text)
    assert "<script" not in text and "<img" not in text and "<svg" in text
    for m in summary["models"].values():
        assert m["sha256"] in text
    assert "Moments that landed" in text and "happiness" in text
    page = browser.new_page()
    requests = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto((tmp_path / "report.html").as_uri())
    assert requests == [(tmp_path / "report.html").as_uri()]
    tracks = page.locator("h2:has-text('Tracks') + p + table tbody tr")
    assert tracks.count() == summary["tracks"] == 3
    assert page.locator("h3:has-text('happiness') + table tbody tr").count() >= 1
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "report.png"), full_page=True)
