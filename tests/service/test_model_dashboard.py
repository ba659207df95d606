"""The dashboard's Model tab in a real browser (Chromium via Playwright): observed vs imputed, forecast
vs what happened, reaction types; and the CI band that breaks where a bucket has no interval."""
import httpx
import pytest
from sqlmodel import Session

import test_dashboard
from test_dashboard import Server, wait_for
from test_model_service import SETTINGS, load_season
from vision.reaction_model.simulate import simulate

pytest.importorskip("jax")

browser = test_dashboard.browser  # the fixture: Chromium through Playwright


class Api:
    def __init__(self, url):
        self.url = url

    def post(self, path, json):
        return httpx.post(self.url + path, json=json)


def test_model_tab_and_band_gaps(browser, tmp_path):
    from service import reaction_store as rs

    with Server(tmp_path / "m.db") as srv:
        season = simulate(screenings=2, duration_s=40, viewers=(9, 9), seed=1)
        content, ids = load_season(Api(srv.url), season, 40)
        with Session(srv.app.state.engine) as session:
            rs.run_fit(session, rs.create_fit(session, content, SETTINGS))
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(srv.url + "/")
        page.wait_for_selector("body[data-state=ready]")
        # a band over runs with a gap between them: one polygon per run, broken by a null
        gap = page.evaluate("modelTab.band([0, 1, 2, 3, 4], [0, 0, null, 0, 0], [1, 1, null, 1, 1], '#000000', 'x').x")
        assert gap == [0, 1, 1, 0, None, 3, 4, 4, 3]
        page.click("#tab-model")
        wait_for(page, "document.getElementById('model-types').data")
        imputed = page.evaluate("document.getElementById('model-imputed').data.map(d => d.meta)")
        assert imputed == ["observed", "imputed"]
        forecast = page.evaluate("document.getElementById('model-forecast').data.map(d => d.meta)")
        assert forecast == ["model-band", "forecast", "actual"]
        types = page.evaluate("document.getElementById('model-types').data.map(d => d.name)")
        assert types[-1].startswith("divergence") and all("viewers" in n for n in types[:-1])
        page.fill("#model-first", "20")
        page.dispatch_event("#model-first", "change")
        wait_for(page, "document.getElementById('model-forecast').data[1].x[0] === 20")
        assert page.locator("#banner").is_hidden()
