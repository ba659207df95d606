"""`audience purge`: retention, screenings (and everything derived) older than some days deleted."""
from __future__ import annotations

import sys

from . import options
from .common import open_db
from .options import positive


def add_parser(sub, name: str) -> None:
    pg = options.add_command(sub, name, help="delete screenings (and everything derived) older than some days",
                             description="Retention: delete every screening that started (or, without a start "
                                         "time, was created) more than DAYS ago, with all statistics derived from "
                                         "it, then contents older than that with no screening left.")
    pg.add_argument("--older-than", type=positive(float), required=True, metavar="DAYS")
    pg.add_argument("--db", default="sqlite:///audience.db", help="database URL (default: sqlite:///audience.db)")
    pg.add_argument("--dry-run", action="store_true", help="only say what would be deleted")


def run(args) -> int:
    from sqlmodel import Session

    from service import store

    with Session(open_db(args.db)) as session:
        gone = store.purge(session, args.older_than, args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(gone['screenings'])} screening(s) older than {args.older_than:g} days"
          f"{' (' + ', '.join(map(str, gone['screenings'])) + ')' if gone['screenings'] else ''} and "
          f"{len(gone['contents'])} content(s) left without screenings"
          f"{' (' + ', '.join(map(str, gone['contents'])) + ')' if gone['contents'] else ''}", file=sys.stderr)
    return 0
