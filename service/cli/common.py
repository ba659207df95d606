"""Helpers of more than one subcommand: opening a database, the API key for --api."""
from __future__ import annotations

import os

from vision.errors import DatabaseUnusable


def open_db(url: str):
    """An engine on the database at `url`, migrated; any driver error is one line (exit 8)."""
    from service.db import make_engine, migrate

    try:
        engine = make_engine(url)
        migrate(engine)
    except Exception as exc:  # noqa: BLE001 - a driver error is one line
        raise DatabaseUnusable(f"database {url}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
    return engine


def api_key(args) -> str | None:
    """--api-key, else $AUDIENCE_API_KEY; None: an open service. Passed to the uplink client, never kept globally."""
    return getattr(args, "api_key", None) or os.environ.get("AUDIENCE_API_KEY") or None
