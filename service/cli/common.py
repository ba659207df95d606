"""Helpers of more than one subcommand: opening a database, the API key for --api."""
from __future__ import annotations

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


def use_api_key(args) -> None:
    """--api-key for the requests to --api (default: $AUDIENCE_API_KEY, read by service.publish)."""
    if getattr(args, "api_key", None):
        from service import publish

        publish.API_KEY = args.api_key
