"""The `efdb` command line: serve, migrate, seed, export OpenAPI, verify the audit chain."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from app.core.config import PROJECT_ROOT, Settings, get_settings

OPENAPI_PATH = PROJECT_ROOT / "openapi" / "openapi.json"


class CliError(Exception):
    """A failure reported as one line on stderr with exit status 1."""


def _session_factory(settings: Settings):  # type: ignore[no-untyped-def]
    from app.core.db import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    return engine, make_sessionmaker(engine)


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> None:
    from app.core.migrations import upgrade_to_head

    engine, _ = _session_factory(settings)
    upgrade_to_head(engine)
    engine.dispose()
    print("database at head")


def cmd_seed(args: argparse.Namespace, settings: Settings) -> None:
    from app.datasets.seed import SeedError, load_seed

    engine, factory = _session_factory(settings)
    try:
        with factory.begin() as session:
            result = load_seed(session, settings.seed_dir)
    except SeedError as exc:
        raise CliError(str(exc)) from exc
    finally:
        engine.dispose()
    print(json.dumps(vars(result)))


def prepare_database(settings: Settings) -> None:
    """Migrate to head and, on an empty database, load the seed data."""
    from app.core.migrations import upgrade_to_head
    from app.datasets.seed import database_is_empty, load_seed

    engine, factory = _session_factory(settings)
    try:
        upgrade_to_head(engine)
        with factory.begin() as session:
            if database_is_empty(session):
                load_seed(session, settings.seed_dir)
    finally:
        engine.dispose()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    prepare_database(settings)
    print(f"efdb serving on http://{args.host}:{args.port}/ (API docs at /docs)", flush=True)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=args.log_level == "debug",
    )


def openapi_document() -> str:
    from app.main import create_app

    app = create_app(Settings(database_url="sqlite://"))
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


def cmd_openapi(args: argparse.Namespace, settings: Settings) -> None:
    document = openapi_document()
    path: Path = args.output
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != document:
            raise CliError(f"{path} is out of date; run `efdb openapi` and commit it")
        print(f"{path} is up to date")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    print(f"wrote {path}")


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> None:
    from app.provenance.audit import verify_chain

    engine, factory = _session_factory(settings)
    try:
        with factory() as session:
            verdict = verify_chain(session)
    finally:
        engine.dispose()
    if not verdict.ok:
        raise CliError(f"audit chain broken at event {verdict.first_bad_event}: {verdict.reason}")
    print(json.dumps({"ok": True, "events": verdict.events}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="efdb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate, seed an empty database, and serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(handler=cmd_serve)

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db.add_parser("upgrade", help="migrate the database to head").set_defaults(
        handler=cmd_db_upgrade
    )

    commands.add_parser("seed", help="load seed_data/ (skips what is loaded)").set_defaults(
        handler=cmd_seed
    )

    openapi = commands.add_parser("openapi", help="write or check openapi/openapi.json")
    openapi.add_argument("--check", action="store_true", help="fail if the file is out of date")
    openapi.add_argument("--output", type=Path, default=OPENAPI_PATH)
    openapi.set_defaults(handler=cmd_openapi)

    audit = commands.add_parser("audit", help="the audit chain").add_subparsers(
        dest="audit", required=True
    )
    audit.add_parser("verify", help="exit 1 naming the first bad event").set_defaults(
        handler=cmd_audit_verify
    )
    return parser


def _one_line(exc: BaseException) -> str:
    # SQLAlchemy wraps the driver's error and appends a help link; the driver's words suffice.
    cause = getattr(exc, "orig", None) or exc
    return f"{type(cause).__name__}: {' '.join(str(cause).split())}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace, Settings], None] = args.handler
    try:
        handler(args, get_settings())
    except CliError as exc:
        print(f"efdb: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one line, never a traceback, for operators' scripts
        print(f"efdb: {_one_line(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
