"""`audience keys`: create, list, revoke API keys; reopen a service to run without them (loopback only)."""
from __future__ import annotations

import sys

from vision.errors import AudienceError

from . import options
from .common import open_db
from .options import Parser, positive


def add_parser(sub, name: str) -> None:
    k = options.add_command(sub, name, help="create, list or revoke API keys",
                            description="API keys for the service: scopes read (curves and everything readable), "
                                        "ingest (store statistics, report live sources) and admin (everything, "
                                        "including per-track data); optionally limited to some contents. The key "
                                        "is printed once at creation; the database keeps only its hash. Once a key "
                                        "has been created, every API request needs one, also after every key is "
                                        "revoked, until `keys reopen`.")
    k.add_argument("--db", default="sqlite:///audience.db", help="database URL (default: sqlite:///audience.db)")
    ks = k.add_subparsers(dest="action", required=True, parser_class=Parser)
    kc = ks.add_parser("create", help="create a key and print it (once)")
    kc.add_argument("--name", required=True, help="who or what uses it (e.g. 'venue 12 box')")
    kc.add_argument("--scope", action="append", required=True, choices=["read", "ingest", "admin"],
                    help="repeat for several")
    kc.add_argument("--content", action="append", type=positive(int), default=None,
                    help="limit the key to this content id (repeat for several; default: all contents)")
    ks.add_parser("list", help="list keys (never the keys themselves)")
    kr = ks.add_parser("revoke", help="revoke a key by its id")
    kr.add_argument("id", type=positive(int))
    ko = ks.add_parser("reopen", help="let the service run without keys again (loopback only; recorded)",
                       description="Revoking every key leaves a closed service, never an open one. This is "
                                   "the explicit decision to serve without keys again, on loopback only; the "
                                   "time and the reason are recorded in the database.")
    ko.add_argument("--reason", required=True, help="why (recorded)")


def run(args) -> int:
    from sqlmodel import Session

    from service import auth

    with Session(open_db(args.db)) as session:
        if args.action == "create":
            key, secret = auth.create_key(session, args.name, args.scope, args.content)
            print(secret)
            print(f"created key {key.id} ({key.name}: {', '.join(key.scopes)}"
                  f"{'; contents ' + ', '.join(map(str, key.contents)) if key.contents else ''}); "
                  "it is shown only now", file=sys.stderr)
        elif args.action == "list":
            print("id\tname\tprefix\tscopes\tcontents\tcreated\trevoked")
            for key in auth.list_keys(session):
                print(f"{key.id}\t{key.name}\t{key.prefix}…\t{','.join(key.scopes)}\t"
                      f"{','.join(map(str, key.contents)) if key.contents else 'all'}\t"
                      f"{key.created_at:%Y-%m-%d %H:%M}\t{key.revoked_at or ''}")
        elif args.action == "reopen":
            try:
                auth.reopen(session, args.reason)
            except ValueError as exc:
                raise AudienceError(f"not reopened: {exc}") from None
            print(f"the service runs without API keys again, on loopback only (recorded: {args.reason})",
                  file=sys.stderr)
        else:
            key = auth.revoke_key(session, args.id)
            if key is None:
                raise AudienceError(f"no key {args.id} in {args.db}")
            print(f"key {key.id} ({key.name}) revoked", file=sys.stderr)
    return 0
