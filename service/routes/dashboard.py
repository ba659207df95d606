"""The dashboard: one page at `/`, its script and style, and the chart library (Plotly.js, MIT), all
served by the service itself from installed files, so the page works with no network beyond it."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)

PAGE = Path(__file__).resolve().parent.parent / "dashboard"
ASSETS = {"app.js": "text/javascript", "model.js": "text/javascript", "style.css": "text/css"}


def plotly_js() -> Path:
    """plotly.min.js as the `plotly` wheel from PyPI ships it (package_data)."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


@router.get("/")
def index():
    return FileResponse(PAGE / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/assets/{name}")
def asset(name: str):
    if name == "plotly.min.js":
        return FileResponse(plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})
    if name not in ASSETS:
        raise HTTPException(404, f"no asset {name}")
    return FileResponse(PAGE / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})
