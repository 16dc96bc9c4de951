"""The `efdb` command line: serve, migrate, seed, export OpenAPI, verify the audit chain and
the export store."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.config import PROJECT_ROOT, Settings, get_settings
from app.signing.verify_arguments import add_arguments as add_verify_arguments

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

# In a source checkout, the committed document (a test keeps it in sync); an installed wheel
# has no checkout (PROJECT_ROOT is then site-packages), so the working directory.
OPENAPI_PATH = (
    PROJECT_ROOT / "openapi" / "openapi.json"
    if (PROJECT_ROOT / "pyproject.toml").is_file()
    else Path("openapi.json")
)


class CliError(Exception):
    """A failure reported as one line on stderr with exit status 1."""


def _session_factory(
    settings: Settings, *, migrating: bool = False
) -> tuple[Engine, sessionmaker[Session]]:
    """An engine and sessions on the configured database. Unless the command itself migrates
    (`db upgrade`, `serve`), a database without the schema is refused with what to do, rather
    than created empty (a relative `./var` from another directory is a different database)."""
    from sqlalchemy.engine import make_url

    # Every mapped class, so that a command touching one model (a client refers to its
    # publisher) works in a process that has imported nothing else.
    import app.models  # noqa: F401
    from app.core.db import make_engine, make_sessionmaker
    from app.core.migrations import current_revision

    url = make_url(settings.database_url)
    where = _database_label(settings)
    hint = (
        "run `efdb db upgrade` (or `efdb serve`) first, or point EFDB_DATA_DIR or "
        "EFDB_DATABASE_URL at the service's data"
    )
    if (
        not migrating
        and url.get_backend_name() == "sqlite"
        and url.database not in (None, "", ":memory:")
        and not Path(str(url.database)).exists()
    ):
        raise CliError(f"no database at {where}: {hint}")
    engine = make_engine(settings.database_url)
    if not migrating and current_revision(engine) is None:
        engine.dispose()
        raise CliError(f"the database at {where} has no schema: {hint}")
    return engine, make_sessionmaker(engine)


def _database_label(settings: Settings) -> str:
    """The database as an operator can find it: a SQLite file's absolute path, else the URL
    without its password."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return str(Path(str(url.database)).resolve())
    return url.render_as_string(hide_password=True)


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> None:
    from app.core.migrations import upgrade_to_head
    from app.reference.loader import load_reference_data

    engine, factory = _session_factory(settings, migrating=True)
    try:
        upgrade_to_head(engine)
        # Reference data (locations, GWP100, conversion properties) is part of the schema's
        # meaning: uploads are checked against it. Audited when it changes, a no-op otherwise.
        with factory.begin() as session:
            loaded = load_reference_data(session, settings.seed_dir / "reference")
    finally:
        engine.dispose()
    changed = (
        f"; reference data updated: {', '.join(sorted(loaded.changed))}" if loaded.changed else ""
    )
    print(f"database at head{changed}")


def _progress(settings: Settings) -> Callable[[str], None]:
    """Progress of a long command: on stderr (stdout keeps only the command's JSON answer), or
    one JSON record a line (logger `efdb.progress`) when the log is JSON."""
    if settings.log_format == "json":
        from app.core.logs import progress_record

        def tell(line: str) -> None:
            # Formatted here rather than through `logging`: a one-shot command configures no
            # handler (an INFO record would be dropped), and configuring one would change the
            # logging of whatever runs the command in-process.
            print(progress_record(line), file=sys.stderr, flush=True)

    else:

        def tell(line: str) -> None:
            print(f"efdb: {line}", file=sys.stderr, flush=True)

    return tell


def _elapsed(started: float) -> str:
    return f"{time.perf_counter() - started:.1f} s"


def cmd_seed(args: argparse.Namespace, settings: Settings) -> None:
    from app.publishing.seed import SeedError, load_seed

    engine, factory = _session_factory(settings)
    try:
        with factory.begin() as session:
            result = load_seed(
                session, settings.seed_dir, scope=settings.seed_scope, progress=_progress(settings)
            )
    except SeedError as exc:
        raise CliError(str(exc)) from exc
    finally:
        engine.dispose()
    print(json.dumps(vars(result)))


def prepare_database(settings: Settings) -> None:
    """Migrate to head and, on an empty database, load the seed data."""
    from app.core.migrations import upgrade_to_head
    from app.exports.store import open_store, store_problem
    from app.publishing.seed import database_is_empty, load_seed
    from app.reference.loader import load_reference_data

    engine, factory = _session_factory(settings, migrating=True)
    try:
        upgrade_to_head(engine)
        with factory.begin() as session:
            load_reference_data(session, settings.seed_dir / "reference")
            if database_is_empty(session):
                load_seed(
                    session,
                    settings.seed_dir,
                    scope=settings.seed_scope,
                    progress=_progress(settings),
                )
        # First start: name the database and mark the export directory as its own. A
        # directory that is not its own is reported by /readyz (and here), not fatal.
        with factory.begin() as session:
            problem = store_problem(session, open_store(settings))
    finally:
        engine.dispose()
    if problem is not None:
        _say(settings, f"efdb: not ready: {problem}", warning=True)


def _configure_logging(settings: Settings, level: str = "info") -> None:
    """The service's log configuration (`EFDB_LOG_FORMAT`) for a long-running command."""
    import logging.config

    from app.core.logs import log_config

    logging.config.dictConfig(log_config(settings.log_format, level))


def _say(settings: Settings, message: str, *, warning: bool = False) -> None:
    """A line of `efdb serve`'s own: printed, or a log record when the log is JSON."""
    if settings.log_format == "json":
        import logging

        logging.getLogger("efdb.serve").log(logging.WARNING if warning else logging.INFO, message)
    else:
        print(message, file=sys.stderr if warning else sys.stdout, flush=True)


def _start_worker(settings: Settings) -> Callable[[], None]:
    """The webhook delivery loop on a thread of this process; returns what stops it."""
    import threading

    from app.changes.delivery import run_worker

    engine, factory = _session_factory(settings)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker,
        kwargs={"sessions": factory, "settings": settings, "stop": stop},
        name="efdb-webhooks",
        daemon=True,
    )
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=15)
        engine.dispose()

    return halt


def cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    import signal
    import threading
    from datetime import timedelta

    import httpx

    from app.changes.delivery import RetryPolicy, run_once, run_worker

    policy = RetryPolicy.from_settings(settings, lease=timedelta(seconds=args.lease))
    engine, factory = _session_factory(settings)
    try:
        if args.once:
            with httpx.Client() as http:
                sent = run_once(factory, settings=settings, policy=policy, http=http)
            print(json.dumps({"attempted": sent}))
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        _configure_logging(settings)
        _say(settings, "efdb worker delivering webhooks")
        try:
            run_worker(factory, settings=settings, stop=stop, policy=policy, poll_seconds=args.poll)
        except KeyboardInterrupt:
            stop.set()
    finally:
        engine.dispose()


class _Terminated(BaseException):
    """SIGTERM reached `efdb serve` outside uvicorn's own handling of it."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def issuer_for(host: str, port: int) -> str:
    """The issuer `efdb serve --host --port` implies when `EFDB_ISSUER` is unset: its own
    address (loopback for a wildcard one, which no client can call)."""
    if host in {"", "0.0.0.0", "::"}:
        host = "127.0.0.1"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _follow_the_command_line(args: argparse.Namespace, settings: Settings) -> Settings:
    """Unless `EFDB_ISSUER` is set (in the environment or `.env`), the issuer is the address
    being served: token `iss`, discovery metadata and absolute URLs then point at it. Set in
    the environment, so that every worker process uvicorn starts reads the same."""
    if "issuer" in settings.model_fields_set:
        return settings
    os.environ["EFDB_ISSUER"] = issuer_for(args.host, args.port)
    get_settings.cache_clear()
    return get_settings()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    import signal

    settings = _follow_the_command_line(args, settings)
    if settings.log_format == "json":  # the migration and start-up lines are JSON too
        _configure_logging(settings, args.log_level)
    prepare_database(settings)
    halt_worker = None if args.no_worker else _start_worker(settings)
    _say(settings, f"efdb serving on http://{args.host}:{args.port}/ (API docs at /docs)")
    terminated = False
    previous = signal.getsignal(signal.SIGTERM)
    try:
        # uvicorn handles SIGTERM (a graceful shutdown), then raises it again with the handler
        # it found. Left at the default, that ended the process at once: the webhook thread
        # died mid-delivery, its delivery still leased to it until the lease (60 s) ran out.
        # This handler lets the thread finish the request it has started, record its outcome
        # and stop (`halt_worker`) before the process ends.
        signal.signal(signal.SIGTERM, _on_sigterm)
        _run_uvicorn(args, settings)
    except _Terminated:
        terminated = True
        # A second SIGTERM while the thread finishes ends the process at once (its delivery
        # is sent again by a worker once the lease runs out).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    finally:
        if halt_worker is not None:
            halt_worker()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if terminated:  # end as uvicorn meant to: killed by SIGTERM, as a supervisor expects
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


def _run_uvicorn(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from app.core.logs import log_config

    log_format = settings.log_format
    uvicorn.run(
        "app.main:create_app",
        log_config=log_config(log_format, args.log_level),
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        # JSON: the service's own access line (app.core.logs.AccessLog) replaces uvicorn's.
        access_log=log_format == "text" and args.log_level == "debug",
    )


@functools.cache  # the document depends on the code only; tests ask for it several times
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
    from app.signing.integrity import deep_verify

    saved = [_read_checkpoint(path) for path in args.checkpoint]
    engine, factory = _session_factory(settings)
    try:
        with factory() as session:
            verdict = deep_verify(session, saved_checkpoints=saved)
    finally:
        engine.dispose()
    for discrepancy in verdict.discrepancies:
        print(discrepancy)
    if verdict.chain_broken_at is not None:
        raise CliError(
            f"audit chain broken at event {verdict.chain_broken_at}: {verdict.chain_reason}"
            + (
                f" (and {len(verdict.discrepancies)} more discrepancies)"
                if verdict.discrepancies
                else ""
            )
        )
    if verdict.discrepancies:
        raise CliError(
            f"{len(verdict.discrepancies)} discrepancies between the database and its audit "
            "log, releases or checkpoints (listed above)"
        )
    print(
        json.dumps(
            {
                "ok": True,
                "events": verdict.events,
                "releases": verdict.releases,
                "checkpoints": verdict.checkpoints,
            }
        )
    )


def _read_checkpoint(path: Path) -> str:
    """A saved checkpoint: its JWS, or an item of GET /v1/audit/checkpoints (JSON)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"cannot read checkpoint {path}: {exc.strerror}") from exc
    if text.startswith("{"):
        try:
            return str(json.loads(text)["jws"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CliError(f"{path}: not a checkpoint (no `jws` member)") from exc
    return text


def cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> None:
    from app.signing.keys import ReleaseKeyError, ReleaseKeys

    engine, factory = _session_factory(settings)
    try:
        with factory.begin() as session:
            record = ReleaseKeys(settings).rotate(session, actor=_cli_actor(), new_key=args.key)
            shown = {"kid": record.kid, "not_before": record.not_before.isoformat()}
    except ReleaseKeyError as exc:
        raise CliError(str(exc)) from exc
    finally:
        engine.dispose()
    print(json.dumps({"active": shown}))


def cmd_audit_checkpoint(args: argparse.Namespace, settings: Settings) -> None:
    from app.signing.keys import ReleaseKeyError, ReleaseKeys
    from app.signing.statements import checkpoint_resource, sign_checkpoint

    engine, factory = _session_factory(settings)
    try:
        with factory.begin() as session:
            checkpoint = sign_checkpoint(session, ReleaseKeys(settings), actor=_cli_actor())
            shown = checkpoint_resource(checkpoint)
    except ReleaseKeyError as exc:
        raise CliError(str(exc)) from exc
    finally:
        engine.dispose()
    print(json.dumps(shown))


def cmd_verify(args: argparse.Namespace, settings: Settings) -> None:
    from app.signing.verify import run

    verdict = run(
        args.path,
        args.jwks,
        args.audit_log,
        from_url=args.from_url,
        proof=args.proof,
        newer=args.newer,
    )
    if verdict != 0 and (args.from_url is not None or args.proof is not None):
        raise CliError(
            f"the service's history is not shown to extend {args.path} (see the FAILED lines)"
        )
    if verdict != 0:
        raise CliError(f"{args.path} is not what the service signed (see the FAILED lines)")


def _cli_actor() -> str:
    """Audit actor for commands an operator runs: `cli:<login>`."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in some containers
        return "cli"


def cmd_publisher_create(args: argparse.Namespace, settings: Settings) -> None:
    from app.auth.service import AdminError
    from app.datasets.publishers import create_publisher

    engine, factory = _session_factory(settings)
    try:
        with factory.begin() as session:
            publisher = create_publisher(
                session,
                slug=args.slug,
                name_zh=args.name_zh,
                name_en=args.name_en,
                sectors=args.sector,
                contact_email=args.email,
                actor=_cli_actor(),
            )
            shown = {
                "slug": publisher.slug,
                "name_zh": publisher.name_zh,
                "name_en": publisher.name_en,
                "sectors": publisher.sectors,
                "contact_email": publisher.contact_email,
                "status": publisher.status,
            }
    except AdminError as exc:
        raise CliError(str(exc)) from exc
    finally:
        engine.dispose()
    print(json.dumps(shown, ensure_ascii=False))


def cmd_client_create(args: argparse.Namespace, settings: Settings) -> None:
    from app.auth.service import AdminError, create_client

    engine, factory = _session_factory(settings)
    try:
        with factory.begin() as session:
            issued = create_client(
                session,
                publisher=args.publisher,
                scopes=args.scope,
                name=args.name,
                actor=_cli_actor(),
                secret_hash_cost=settings.secret_hash_cost,
            )
    except AdminError as exc:
        raise CliError(str(exc)) from exc
    finally:
        engine.dispose()
    # The secret is printed this once; only its hash is stored.
    print(json.dumps(issued.as_dict(), ensure_ascii=False))


def cmd_client_revoke(args: argparse.Namespace, settings: Settings) -> None:
    from app.auth.service import AdminError, revoke_client

    engine, factory = _session_factory(settings)
    try:
        with factory.begin() as session:
            client = revoke_client(session, client_id=args.client_id, actor=_cli_actor())
            revoked_at = client.revoked_at
    except AdminError as exc:
        raise CliError(str(exc)) from exc
    finally:
        engine.dispose()
    assert revoked_at is not None
    print(json.dumps({"client_id": args.client_id, "revoked_at": revoked_at.isoformat()}))


def _dataset_ref(value: str) -> tuple[str, str]:
    publisher, _, dataset = value.partition("/")
    if not publisher or not dataset or "/" in dataset:
        raise CliError(f"--dataset takes PUBLISHER/DATASET, not {value!r}")
    return publisher, dataset


def cmd_grant(args: argparse.Namespace, settings: Settings) -> None:
    from app.core.errors import ProblemError
    from app.datasets import grants

    engine, factory = _session_factory(settings)
    shown: Any
    try:
        with factory.begin() as session:
            if args.grant == "list":
                publisher, dataset = _dataset_ref(args.dataset) if args.dataset else (None, None)
                shown = grants.list_grants(session, publisher=publisher, dataset=dataset)
            elif args.grant == "add":
                publisher, dataset = _dataset_ref(args.dataset)
                shown, _ = grants.add_grant(
                    session,
                    publisher=publisher,
                    dataset=dataset,
                    client_id=args.client,
                    actor=_cli_actor(),
                )
            else:
                publisher, dataset = _dataset_ref(args.dataset)
                grants.remove_grant(
                    session,
                    publisher=publisher,
                    dataset=dataset,
                    client_id=args.client,
                    actor=_cli_actor(),
                )
                shown = {"dataset": args.dataset, "client_id": args.client, "removed": True}
    except ProblemError as exc:
        raise CliError(str(exc.detail)) from exc
    finally:
        engine.dispose()
    print(json.dumps(shown, ensure_ascii=False, default=str))


def cmd_publisher_list(args: argparse.Namespace, settings: Settings) -> None:
    from app.datasets.publishers import list_publishers

    engine, factory = _session_factory(settings)
    try:
        with factory() as session:
            listed = list_publishers(session)
    finally:
        engine.dispose()
    print(json.dumps(listed, ensure_ascii=False))


def _cmd_publisher_status(args: argparse.Namespace, settings: Settings, *, suspended: bool) -> None:
    from app.auth.service import AdminError
    from app.datasets.publishers import set_publisher_status

    engine, factory = _session_factory(settings)
    try:
        with factory.begin() as session:
            publisher = set_publisher_status(
                session,
                slug=args.slug,
                suspended=suspended,
                reason=args.reason,
                actor=_cli_actor(),
            )
            shown = {"slug": publisher.slug, "status": publisher.status}
    except AdminError as exc:
        raise CliError(str(exc)) from exc
    finally:
        engine.dispose()
    print(json.dumps(shown))


def cmd_publisher_suspend(args: argparse.Namespace, settings: Settings) -> None:
    _cmd_publisher_status(args, settings, suspended=True)


def cmd_publisher_resume(args: argparse.Namespace, settings: Settings) -> None:
    _cmd_publisher_status(args, settings, suspended=False)


def cmd_client_list(args: argparse.Namespace, settings: Settings) -> None:
    from app.auth.service import list_clients

    engine, factory = _session_factory(settings)
    try:
        with factory() as session:
            listed = list_clients(
                session, publisher=args.publisher, include_revoked=args.include_revoked
            )
    finally:
        engine.dispose()
    print(json.dumps(listed, ensure_ascii=False))


# `efdb import NAME`: the importer (app.importers) each name runs.
IMPORT_SOURCE_FORMATS = {
    "desnz": "desnz-flat",
    "mee-electricity": "mee-electricity",
    "epa-supply-chain": "epa-supply-chain",
    "epa-hub": "epa-hub",
    "nga": "nga",
    "olca-jsonld": "olca-jsonld",
}
IMPORT_ACTOR = "efdb-import"


def _dataset_argument(text: str) -> tuple[str, str]:
    publisher, _, dataset = text.partition("/")
    if not publisher or not dataset or "/" in dataset:
        raise argparse.ArgumentTypeError(f"'{text}' is not publisher/dataset")
    return publisher, dataset


def _problem_line(detail: object, errors: list[dict[str, object]] | None) -> str:
    """A problem as one line: its detail and its first errors with their place."""
    listed = []
    for error in (errors or [])[:3]:
        place = ", ".join(
            f"{name} {error[name]}"
            for name in ("sheet", "row", "process", "exchange", "column", "field")
            if error.get(name) is not None
        )
        listed.append(
            f"[{place}] {error.get('code')}: {error.get('detail')}"
            if place
            else str(error.get("detail"))
        )
    return " ".join([str(detail), *listed])


def cmd_import(args: argparse.Namespace, settings: Settings) -> None:
    """Import a publisher's own file: into the local database as a draft, or into a running
    service (`--to`) as the publisher's OAuth client, through upload and submit."""
    source_format = IMPORT_SOURCE_FORMATS[args.source]
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    if args.to:
        # The secret from the environment rather than the command line, where `ps` shows it.
        args.client_secret = args.client_secret or os.environ.get("EFDB_IMPORT_CLIENT_SECRET")
        if not (args.client_id and args.client_secret):
            raise CliError(
                "--to needs --client-id and --client-secret (or EFDB_IMPORT_CLIENT_SECRET)"
            )
        result = _import_over_http(args, source_format, path, _progress(settings))
    else:
        result = _import_locally(args, settings, source_format, path)
    print(json.dumps(result, ensure_ascii=False))


def _import_locally(
    args: argparse.Namespace, settings: Settings, source_format: str, path: Path
) -> dict[str, object]:
    from app.core.errors import ProblemError
    from app.datasets.service import dataset_for_write
    from app.publishing.drafts import upload_draft

    started = time.perf_counter()
    tell = _progress(settings)
    publisher, dataset = args.dataset
    engine, factory = _session_factory(settings)
    try:
        with factory.begin() as session, path.open("rb") as stream:
            target = dataset_for_write(session, publisher=publisher, dataset=dataset)
            tell(
                f"reading {path.name} ({path.stat().st_size:,} bytes) as {source_format}: "
                f"mapping and validating into {publisher}/{dataset} {args.version}"
            )
            outcome = upload_draft(
                session,
                dataset=target,
                dataset_label=f"{publisher}/{dataset}",
                version=args.version,
                release_notes=args.release_notes,
                file_name=path.name,
                stream=stream,
                actor=IMPORT_ACTOR,
                max_rows=settings.max_upload_rows,
                source_format=source_format,
                through_year=args.through_year,
                gwp_set=args.gwp_set,
            )
            report = outcome.report
            tell(
                f"validated {outcome.version.row_count:,} rows, {report.warning_count} "
                f"warnings; sha256 {outcome.version.upload_file_sha256} ({_elapsed(started)})"
            )
            result: dict[str, object] = {
                "dataset": f"{publisher}/{dataset}",
                "version": outcome.version.version,
                "status": outcome.version.status,
                "row_count": outcome.version.row_count,
                "file_sha256": outcome.version.upload_file_sha256,
                "warning_count": report.warning_count,
            }
    except ProblemError as exc:
        raise CliError(_problem_line(exc.detail, exc.errors)) from exc
    finally:
        engine.dispose()
    tell(f"done: draft {publisher}/{dataset} {args.version} stored ({_elapsed(started)})")
    return result


def _import_over_http(
    args: argparse.Namespace, source_format: str, path: Path, tell: Callable[[str], None]
) -> dict[str, object]:
    import httpx

    started = time.perf_counter()

    publisher, dataset = args.dataset
    base = args.to.rstrip("/")
    versions = f"{base}/v1/datasets/{publisher}/{dataset}/versions"

    def refused(step: str, response: httpx.Response) -> CliError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        detail = body.get("detail") or body.get("error_description") or body.get("error")
        return CliError(
            f"{step}: {response.status_code} "
            + _problem_line(detail or response.reason_phrase, body.get("errors"))
        )

    with httpx.Client(timeout=args.timeout) as http:
        token = http.post(
            f"{base}/oauth/token",
            auth=(args.client_id, args.client_secret),
            data={"grant_type": "client_credentials"},
        )
        if token.status_code != 200:
            raise refused("token", token)
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        form: dict[str, str] = {"version": args.version, "source_format": source_format}
        if args.release_notes:
            form["release_notes"] = args.release_notes
        if args.through_year is not None:
            form["through_year"] = str(args.through_year)
        if args.gwp_set is not None:
            form["gwp_set"] = args.gwp_set
        tell(
            f"uploading {path.name} ({path.stat().st_size:,} bytes) as {source_format} to "
            f"{versions} (the service maps and validates it)"
        )
        with path.open("rb") as stream:
            uploaded = http.post(
                versions,
                headers=headers,
                data=form,
                files={"file": (path.name, stream, "application/octet-stream")},
            )
        if uploaded.status_code not in (200, 201):
            raise refused("upload", uploaded)
        report = uploaded.json()
        tell(
            f"uploaded: {report['row_count']:,} rows validated, "
            f"{report['report']['warning_count']} warnings; sha256 {report['file_sha256']} "
            f"({_elapsed(started)}); submitting for review"
        )
        submitted = http.post(f"{versions}/{args.version}/submit", headers=headers)
        if submitted.status_code != 200:
            raise refused("submit", submitted)
        version = submitted.json()
    tell(f"done: {publisher}/{dataset} {args.version} {version['status']} ({_elapsed(started)})")
    return {
        "dataset": f"{publisher}/{dataset}",
        "version": version["version"],
        "status": version["status"],
        "row_count": report["row_count"],
        "file_sha256": report["file_sha256"],
        "content_sha256": version.get("content_sha256"),
        "warning_count": report["report"]["warning_count"],
    }


def _add_import_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    importer = commands.add_parser(
        "import",
        help="import a publisher's own file (DESNZ flat file, MEE electricity table, EPA supply "
        "chain factors, EPA hub, NGA workbook, openLCA JSON-LD zip)",
    ).add_subparsers(dest="source", required=True)
    helps = {
        "desnz": "a UK DESNZ GHG conversion factors flat file (.xls or .xlsx)",
        "mee-electricity": "the China MEE electricity factor table (.csv)",
        "epa-supply-chain": "a US EPA Supply Chain GHG Emission Factors CO2e file by NAICS-6 "
        "(.csv; v1.2 or v1.3.0)",
        "epa-hub": "a US EPA GHG Emission Factors Hub workbook (.xlsx; Tables 1 and 2)",
        "nga": "an Australian National Greenhouse Accounts Factors workbook (.xlsx; scope 2 "
        "electricity by state and stationary fuel combustion)",
        "olca-jsonld": "an openLCA JSON-LD zip (.zip; each process emitting CO2, CH4 or N2O to "
        "air becomes a factor per unit of its reference product)",
    }
    for name, text in helps.items():
        sub = importer.add_parser(
            name,
            help=text,
            description=f"Import {text}: into the local database as a draft of the dataset "
            "(which must exist), or with --to into a running service as the publisher's OAuth "
            "client (upload, then submit for review). Prints the draft as JSON.",
        )
        sub.add_argument("file", help="the publisher's file, as downloaded")
        sub.add_argument(
            "--dataset",
            required=True,
            type=_dataset_argument,
            metavar="PUBLISHER/SLUG",
            help="the dataset, e.g. desnz-uk/ghg-conversion-factors",
        )
        sub.add_argument("--version", required=True, help="MAJOR.MINOR.PATCH")
        sub.add_argument("--release-notes", help="the publisher's notes on this release")
        if name == "mee-electricity":
            sub.add_argument(
                "--through-year", type=int, help="only the rows of this data year and earlier"
            )
        if name == "olca-jsonld":
            sub.add_argument(
                "--gwp-set",
                required=True,
                help="the GWP100 set of the reference table CO2e is computed in (AR4, AR5, "
                "AR6), recorded on the factors",
            )
        sub.add_argument("--to", metavar="URL", help="a running efdb service instead")
        sub.add_argument("--client-id", help="the publisher's OAuth client (with --to)")
        sub.add_argument(
            "--client-secret",
            help="its secret (with --to); default: the environment variable "
            "EFDB_IMPORT_CLIENT_SECRET, which `ps` does not show",
        )
        sub.add_argument(
            "--timeout", type=float, default=300, help="seconds per HTTP request (with --to)"
        )
        sub.set_defaults(handler=cmd_import, through_year=None, gwp_set=None)


def _add_admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    publisher = commands.add_parser("publisher", help="publishers").add_subparsers(
        dest="publisher", required=True
    )
    create = publisher.add_parser("create", help="create a publisher (prints it as JSON)")
    create.add_argument("slug", help="lowercase [a-z0-9-], e.g. cisa")
    create.add_argument("--name-zh", required=True, help="Chinese name")
    create.add_argument("--name-en", required=True, help="English name")
    create.add_argument(
        "--sector", action="append", default=[], help="sector code (repeatable), e.g. C31"
    )
    create.add_argument("--email", help="contact email")
    create.set_defaults(handler=cmd_publisher_create)
    publisher.add_parser(
        "list", help="every publisher with its status (prints a JSON array)"
    ).set_defaults(handler=cmd_publisher_list)
    suspend = publisher.add_parser(
        "suspend",
        help="suspend a publisher: its clients' secrets and tokens stop working at once, so "
        "they can neither write nor read as it; audited",
    )
    suspend.add_argument("slug")
    suspend.add_argument("--reason", help="why, recorded in the audit event")
    suspend.set_defaults(handler=cmd_publisher_suspend)
    resume = publisher.add_parser("resume", help="lift a suspension; audited")
    resume.add_argument("slug")
    resume.add_argument("--reason", help="why, recorded in the audit event")
    resume.set_defaults(handler=cmd_publisher_resume)

    client = commands.add_parser("client", help="OAuth2 clients").add_subparsers(
        dest="client", required=True
    )
    create = client.add_parser(
        "create",
        help="create a client; prints its secret once as JSON",
        description="Create an OAuth2 client and print {client_id, client_secret, scopes, "
        "publisher} once; only a hash of the secret is stored. A publisher's client "
        "(--publisher) may hold factors:read and datasets:write. Reviewing and administering "
        "are national roles: datasets:review and admin go only to --admin clients, which "
        "belong to no publisher and may also hold factors:read.",
    )
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--publisher", metavar="SLUG", help="the publisher the client acts for")
    owner.add_argument(
        "--admin", action="store_true", help="a national client (reviewer, administrator)"
    )
    create.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="SCOPE",
        help="factors:read | datasets:write | datasets:review | admin (repeatable, at least one)",
    )
    create.add_argument("--name", help="a label for the client, e.g. the system that uses it")
    create.set_defaults(handler=cmd_client_create)

    revoke = client.add_parser(
        "revoke", help="revoke a client: its secret and its tokens stop working at once"
    )
    revoke.add_argument("client_id")
    revoke.set_defaults(handler=cmd_client_revoke)
    listing = client.add_parser(
        "list",
        help="clients with their scopes, publisher and state, never a secret (prints a JSON "
        "array; revoked ones only with --include-revoked)",
    )
    listing.add_argument("--publisher", metavar="SLUG", help="only this publisher's clients")
    listing.add_argument("--include-revoked", action="store_true", help="also revoked clients")
    listing.set_defaults(handler=cmd_client_list)

    grant = commands.add_parser(
        "grant",
        help="per-dataset grants: which clients read a registered dataset",
        description="A registered dataset is read by its publisher's clients, by national "
        "reviewers and administrators, and by the clients granted it here (they also need "
        "factors:read). Others get 404, as if it did not exist.",
    ).add_subparsers(dest="grant", required=True)
    for name, text in (
        ("add", "grant a client reading a registered dataset (prints the grant as JSON)"),
        ("remove", "end a client's grant at once"),
    ):
        sub = grant.add_parser(name, help=text)
        sub.add_argument("--dataset", required=True, metavar="PUBLISHER/DATASET")
        sub.add_argument("--client", required=True, metavar="CLIENT_ID")
        sub.set_defaults(handler=cmd_grant)
    grant_list = grant.add_parser("list", help="grants as a JSON array, by dataset and client")
    grant_list.add_argument("--dataset", metavar="PUBLISHER/DATASET", help="only this dataset")
    grant_list.set_defaults(handler=cmd_grant)


def _check_export_store(session: Session, settings: Settings) -> None:
    """Refuse to work with an export directory that is not this database's (first start: name
    the database and mark the directory as its own)."""
    from app.exports.store import open_store, store_problem

    problem = store_problem(session, open_store(settings))
    if problem is not None:
        raise CliError(problem)


def cmd_exports_verify(args: argparse.Namespace, settings: Settings) -> None:
    from app.exports.store import open_store, verify_files

    engine, factory = _session_factory(settings)
    try:
        export_store = open_store(settings)
        with factory() as session:
            checks = verify_files(session, export_store)
    finally:
        engine.dispose()
    bad = [check for check in checks if check.problem is not None]
    for check in bad:
        print(
            f"{check.problem}: {check.file.label} ({check.file.path} in {export_store.description})"
        )
    if bad:
        raise CliError(f"{len(bad)} of {len(checks)} recorded export files are missing or differ")
    print(json.dumps({"ok": True, "files": len(checks)}))


def cmd_exports_prepare(args: argparse.Namespace, settings: Settings) -> None:
    from app.exports.service import prepare_release_files
    from app.exports.store import open_store
    from app.signing.keys import ReleaseKeys

    started = time.perf_counter()
    tell = _progress(settings)
    engine, factory = _session_factory(settings)
    try:
        with factory.begin() as session:
            _check_export_store(session, settings)
        with factory.begin() as session:
            files = prepare_release_files(
                session,
                export_store=open_store(settings),
                keys=ReleaseKeys(settings),
                progress=tell,
            )
    finally:
        engine.dispose()
    tell(f"done: {len(files)} files recorded ({_elapsed(started)})")
    print(json.dumps({"ok": True, "files": files}, ensure_ascii=False))


def cmd_snapshot_create(args: argparse.Namespace, settings: Settings) -> None:
    from fastapi.encoders import jsonable_encoder

    from app.core.errors import ProblemError
    from app.exports.service import create_snapshot, snapshot_resource
    from app.exports.store import open_store
    from app.signing.keys import ReleaseKeys

    started = time.perf_counter()
    tell = _progress(settings)
    engine, factory = _session_factory(settings)
    try:
        with factory.begin() as session:
            _check_export_store(session, settings)
        with factory.begin() as session:
            snapshot = create_snapshot(
                session,
                export_store=open_store(settings),
                actor=_cli_actor(),
                keys=ReleaseKeys(settings),
                xlsx_max_rows=settings.snapshot_xlsx_max_rows,
                packages_max_rows=settings.snapshot_packages_max_rows,
                progress=tell,
            )
            resource = snapshot_resource(snapshot)
    except ProblemError as exc:
        raise CliError(exc.detail) from exc
    finally:
        engine.dispose()
    tell(
        f"done: snapshot {snapshot.id}, {snapshot.row_count:,} factors, "
        f"{len(snapshot.files)} files ({_elapsed(started)})"
    )
    print(json.dumps(jsonable_encoder(resource), ensure_ascii=False))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="efdb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate, seed an empty database, and serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (uvicorn workers) sharing the port: production runs one or two "
        "per core; each has its own database pool, caches and --max-expensive-requests budget",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="do not deliver webhooks from this process (run `efdb worker` elsewhere)",
    )
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="deliver webhooks until stopped (SIGTERM)")
    worker.add_argument("--once", action="store_true", help="one round, then exit")
    worker.add_argument(
        "--poll", type=float, default=1.0, help="seconds between rounds when idle (default 1)"
    )
    worker.add_argument(
        "--lease",
        type=float,
        default=60.0,
        help="seconds a claimed delivery stays this worker's (default 60): past it, a worker "
        "that died mid-delivery has its deliveries sent again by another",
    )
    worker.set_defaults(handler=cmd_worker)

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db.add_parser("upgrade", help="migrate the database to head").set_defaults(
        handler=cmd_db_upgrade
    )

    commands.add_parser("seed", help="load seed_data/ (skips what is loaded)").set_defaults(
        handler=cmd_seed
    )

    openapi = commands.add_parser(
        "openapi",
        help="write or check openapi/openapi.json (installed: ./openapi.json)",
    )
    openapi.add_argument("--check", action="store_true", help="fail if the file is out of date")
    openapi.add_argument("--output", type=Path, default=OPENAPI_PATH)
    openapi.set_defaults(handler=cmd_openapi)

    audit = commands.add_parser("audit", help="the audit chain").add_subparsers(
        dest="audit", required=True
    )
    audit_verify = audit.add_parser(
        "verify",
        help="check the chain, every release's rows against its content hash, every version's "
        "status against its audit events, and the chain against every signed checkpoint; "
        "print each discrepancy, exit 1 if any",
    )
    audit_verify.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a checkpoint saved earlier (its JWS, or an item of GET /v1/audit/checkpoints); "
        "repeatable",
    )
    audit_verify.set_defaults(handler=cmd_audit_verify)
    audit.add_parser(
        "checkpoint",
        help="sign a checkpoint of the audit chain (event count, head hash, time); run it "
        "periodically, e.g. from cron (prints it as JSON)",
    ).set_defaults(handler=cmd_audit_checkpoint)

    keys = commands.add_parser("keys", help="the release signing key").add_subparsers(
        dest="keys", required=True
    )
    rotate = keys.add_parser(
        "rotate",
        help="make a new release signing key active and retire the current one (it stays in "
        "the JWKS with the period it signed); audited",
    )
    rotate.add_argument(
        "--key",
        type=Path,
        metavar="PEM",
        help="the new P-256 private key (PEM); required when EFDB_RELEASE_SIGNING_KEY is set "
        "(then point it at this file). Without it, outside production, a new development key "
        "replaces the generated one",
    )
    rotate.set_defaults(handler=cmd_keys_rotate)

    snapshot = commands.add_parser("snapshot", help="national bulk releases").add_subparsers(
        dest="snapshot", required=True
    )
    snapshot.add_parser(
        "create", help="write a snapshot of every redistributable dataset (prints it as JSON)"
    ).set_defaults(handler=cmd_snapshot_create)

    exports = commands.add_parser("exports", help="the export store").add_subparsers(
        dest="exports", required=True
    )
    exports.add_parser(
        "verify",
        help="check every recorded export and snapshot file against its sha256 and size; "
        "print those missing or differing, exit 1 if any",
    ).set_defaults(handler=cmd_exports_verify)
    exports.add_parser(
        "prepare",
        help="write (once) the Parquet, Arrow, openLCA JSON-LD and ILCD files of every release "
        "the next snapshot holds, so that snapshots are assembled from them; print them as JSON",
    ).set_defaults(handler=cmd_exports_prepare)

    verify = commands.add_parser(
        "verify",
        help="check a downloaded snapshot, export, release.jws or checkpoint offline against "
        "the public keys (no database); exit 1 naming what failed",
    )
    add_verify_arguments(verify)
    verify.set_defaults(handler=cmd_verify)

    _add_admin_commands(commands)
    _add_import_commands(commands)
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
