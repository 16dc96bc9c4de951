"""`efdb verify`: check what was downloaded from efdb with nothing but the public key set.

Needs no database and no settings (also runs as `python -m app.signing.verify`). It takes:
- a snapshot folder (or its `manifest.json`), with `manifest.json.jws` beside it: the manifest's
  signature, every data file present against the manifest's sha256 and size, every version's
  signed statement, the content hash and row count of each version recomputed from
  `factors.parquet`, and the audit checkpoint the manifest carries;
- a Parquet or Arrow export of one version (its statement rides in the key-value metadata) or
  of a snapshot: the signatures, the content hash recomputed from the rows, the row count;
- a `release.jws`, a saved checkpoint (`.jws`) or a `manifest.json.jws`: the signature; with
  `--audit-log` (the log as `GET /v1/audit` gives it), a saved checkpoint is also checked to
  be extended by the log now: nothing it covered was deleted or rewritten.

Each check prints one line; any failure makes the exit status 1 and says what failed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from app.signing.jws import (
    TYP_CHECKPOINT,
    TYP_MANIFEST,
    TYP_RELEASE,
    SignatureProblem,
    verify,
)
from app.signing.verify_arguments import add_arguments

RELEASE_STATEMENT_KEY = b"efdb:release_statement"


@dataclass
class Report:
    lines: list[tuple[bool, str]] = field(default_factory=list)

    def ok(self, message: str) -> None:
        self.lines.append((True, message))

    def fail(self, message: str) -> None:
        self.lines.append((False, message))

    @property
    def valid(self) -> bool:
        return bool(self.lines) and all(ok for ok, _ in self.lines)

    def failures(self) -> list[str]:
        return [message for ok, message in self.lines if not ok]


def load_jwks(source: str) -> dict[str, Any]:
    """A JWK Set from a file or an http(s) URL."""
    if source.startswith(("https://", "http://")):
        with urllib.request.urlopen(source, timeout=30) as response:
            return dict(json.load(response))
    return dict(json.loads(Path(source).read_text(encoding="utf-8")))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- rows


def _read_table(path: Path) -> pa.Table:
    data = path.read_bytes()
    if data[:4] == b"PAR1":
        return pq.read_table(io.BytesIO(data))
    if data[:6] == b"ARROW1":
        return ipc.open_file(io.BytesIO(data)).read_all()
    return ipc.open_stream(io.BytesIO(data)).read_all()


def recompute(table: pa.Table) -> dict[str, tuple[str, int]]:
    """Each version's (content_sha256, row count) from the rows alone, by the recipe in the
    file's metadata: the hashed fields are `efdb:content_hash_fields`, each value's JSON form
    follows its Arrow type."""
    metadata = table.schema.metadata or {}
    fields: list[str] = json.loads(metadata[b"efdb:content_hash_fields"])
    types = {name: table.schema.field(name).type for name in fields}

    def canonical(name: str, value: Any) -> Any:
        kind = types[name]
        if pa.types.is_integer(kind):
            return int(value)
        if pa.types.is_floating(kind):
            return float(value)
        if pa.types.is_date(kind):
            return value.isoformat()
        return value

    versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in table.to_pylist():
        versions[f"{row['publisher']}/{row['dataset']}@{row['version']}"].append(row)
    result = {}
    for key, rows in versions.items():
        lines = [
            json.dumps(
                {name: canonical(name, row[name]) for name in fields if row[name] is not None},
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            )
            for row in sorted(rows, key=lambda r: str(r["factor_code"]))
        ]
        result[key] = (hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest(), len(rows))
    return result


# --------------------------------------------------------------------------- statements


def _statement(
    report: Report, token: str, jwks: dict[str, Any], where: str
) -> dict[str, Any] | None:
    try:
        checked = verify(token, jwks, typ=TYP_RELEASE)
    except SignatureProblem as exc:
        report.fail(f"{where}: release statement: {exc}")
        return None
    body = dict(checked.json())
    report.ok(
        f"{where}: release statement of {body.get('publisher')}/{body.get('dataset')}@"
        f"{body.get('version')} signed by {checked.kid} ({checked.key_status}) at "
        f"{checked.signed_at.isoformat()}"
    )
    return body


def _key(entry: dict[str, Any]) -> str:
    return f"{entry.get('publisher')}/{entry.get('dataset')}@{entry.get('version')}"


def _compare_rows(
    report: Report,
    where: str,
    claimed: Iterable[dict[str, Any]],
    recomputed: dict[str, tuple[str, int]],
) -> None:
    seen = set()
    for entry in claimed:
        key = _key(entry)
        seen.add(key)
        if key not in recomputed:
            report.fail(f"{where}: no rows of {key}")
            continue
        content, count = recomputed[key]
        if content != entry.get("content_sha256"):
            report.fail(
                f"{where}: {key}: content hash recomputed from the rows is {content}, not the "
                f"signed {entry.get('content_sha256')}"
            )
        else:
            report.ok(f"{where}: {key}: content hash recomputed from the rows matches")
        if count != entry.get("row_count"):
            report.fail(f"{where}: {key}: {count} rows, not the signed {entry.get('row_count')}")
    for extra in sorted(set(recomputed) - seen):
        report.fail(f"{where}: rows of {extra}, which no signed statement names")


def verify_export(report: Report, path: Path, jwks: dict[str, Any]) -> None:
    """A per-version or snapshot Parquet / Arrow file."""
    try:
        table = _read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        report.fail(f"{path.name}: not a readable Parquet or Arrow file: {exc}")
        return
    metadata = table.schema.metadata or {}
    recomputed = recompute(table)
    if RELEASE_STATEMENT_KEY in metadata:
        body = _statement(report, metadata[RELEASE_STATEMENT_KEY].decode(), jwks, path.name)
        if body is not None:
            _compare_rows(report, path.name, [body], recomputed)
        return
    entries = json.loads(metadata.get(b"efdb:dataset_versions", b"[]"))
    signed = []
    for entry in entries:
        token = entry.get("release_statement")
        if token is None:
            report.fail(f"{path.name}: {_key(entry)} carries no signed release statement")
            continue
        body = _statement(report, token, jwks, path.name)
        if body is not None:
            signed.append(body)
    if not entries:
        report.fail(f"{path.name}: no signed release statement in the file's metadata")
    _compare_rows(report, path.name, signed, recomputed)


def verify_snapshot(report: Report, folder: Path, jwks: dict[str, Any]) -> None:
    manifest_path = folder / "manifest.json"
    signature_path = folder / "manifest.json.jws"
    if not manifest_path.exists() or not signature_path.exists():
        report.fail(f"{folder}: needs manifest.json and manifest.json.jws")
        return
    manifest_bytes = manifest_path.read_bytes()
    try:
        checked = verify(signature_path.read_text(encoding="ascii"), jwks, typ=TYP_MANIFEST)
    except (SignatureProblem, UnicodeError) as exc:
        report.fail(f"manifest.json.jws: {exc}")
        return
    if checked.payload != manifest_bytes:
        report.fail("manifest.json differs from the signed manifest (manifest.json.jws)")
        return
    report.ok(f"manifest.json: signed by {checked.kid} ({checked.key_status})")
    manifest = json.loads(manifest_bytes)
    for entry in manifest.get("files", []):
        target = folder / entry["name"]
        if not target.exists():
            report.ok(f"{entry['name']}: not downloaded, not checked")
            continue
        size, digest = target.stat().st_size, sha256_file(target)
        if digest != entry["sha256"] or size != entry["bytes"]:
            report.fail(
                f"{entry['name']}: sha256 {digest} ({size} bytes), not the manifest's "
                f"{entry['sha256']} ({entry['bytes']} bytes)"
            )
        else:
            report.ok(f"{entry['name']}: sha256 matches the manifest")
    signed = []
    for entry in manifest.get("dataset_versions", []):
        token = entry.get("release_statement")
        if token is None:
            report.fail(f"manifest.json: {_key(entry)} carries no signed release statement")
            continue
        body = _statement(report, token, jwks, "manifest.json")
        if body is None:
            continue
        for name in ("content_sha256", "row_count"):
            if body.get(name) != entry.get(name):
                report.fail(f"manifest.json: {_key(entry)}: {name} differs from its statement")
        signed.append(body)
    data = folder / "factors.parquet"
    if data.exists():
        _compare_rows(report, "factors.parquet", signed, recompute(_read_table(data)))
    checkpoint = manifest.get("audit_checkpoint")
    if checkpoint is not None:
        verify_checkpoint(report, checkpoint["jws"], jwks, "manifest.json: audit checkpoint")


def verify_checkpoint(report: Report, token: str, jwks: dict[str, Any], where: str) -> None:
    try:
        checked = verify(token, jwks, typ=TYP_CHECKPOINT)
    except SignatureProblem as exc:
        report.fail(f"{where}: {exc}")
        return
    body = checked.json()
    report.ok(
        f"{where}: {body['event_count']} events, head {body['head_hash']}, signed by "
        f"{checked.kid} at {checked.signed_at.isoformat()}"
    )


def verify_log_against(
    report: Report, checkpoint: dict[str, Any], events: list[dict[str, Any]], where: str
) -> None:
    """An audit log (events as `GET /v1/audit` gives them, oldest first) against a checkpoint:
    every event's hash recomputed from its content and the one before, and the checkpoint's
    head still at its position."""
    from datetime import datetime

    from app.core.audit import GENESIS_HASH, canonical_event, chain_hash
    from app.signing.statements import chain_extends

    previous = GENESIS_HASH
    hashes = []
    for event in events:
        expected = chain_hash(
            previous,
            canonical_event(
                occurred_at=datetime.fromisoformat(event["occurred_at"]),
                actor=event["actor"],
                action=event["action"],
                subject_type=event["subject_type"],
                subject_id=event["subject_id"],
                payload=event["payload"],
            ),
        )
        if event.get("prev_hash") != previous or event.get("hash") != expected:
            report.fail(
                f"audit log: event {event.get('id')} does not hash from its content and the "
                "event before it"
            )
            return
        hashes.append(expected)
        previous = expected
    report.ok(f"audit log: {len(hashes)} events, every hash recomputed")
    extension = chain_extends(
        hashes, event_count=int(checkpoint["event_count"]), head_hash=str(checkpoint["head_hash"])
    )
    if extension.ok:
        report.ok(f"{where}: the audit log extends the checkpoint")
    else:
        report.fail(f"{where}: {extension.reason}")


def load_events(path: Path) -> list[dict[str, Any]]:
    """Audit events saved from `GET /v1/audit`: a page (`{"items": [...]}`), a list of events,
    or a list of pages."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = [data]
    events: list[dict[str, Any]] = []
    for item in data:
        events.extend(item["items"] if isinstance(item, dict) and "items" in item else [item])
    return events


def verify_jws_file(
    report: Report, path: Path, jwks: dict[str, Any], audit_log: Path | None = None
) -> None:
    token = path.read_text(encoding="ascii", errors="replace").strip()
    if path.name == "manifest.json.jws" or path.name.endswith(".manifest.json.jws"):
        verify_snapshot(report, path.parent, jwks)
        return
    try:
        checked = verify(token, jwks)
    except SignatureProblem as exc:
        report.fail(f"{path.name}: {exc}")
        return
    if checked.typ == TYP_CHECKPOINT:
        verify_checkpoint(report, token, jwks, path.name)
        if audit_log is not None:
            verify_log_against(report, checked.json(), load_events(audit_log), path.name)
    elif checked.typ == TYP_RELEASE:
        _statement(report, token, jwks, path.name)
    else:
        report.fail(f"{path.name}: typ {checked.typ!r} is not one efdb signs")


def verify_path(path: Path, jwks: dict[str, Any], audit_log: Path | None = None) -> Report:
    report = Report()
    if not path.exists():
        report.fail(f"{path}: no such file or folder")
    elif path.is_dir():
        verify_snapshot(report, path, jwks)
    elif path.name == "manifest.json":
        verify_snapshot(report, path.parent, jwks)
    elif path.suffix == ".jws":
        verify_jws_file(report, path, jwks, audit_log)
    else:
        verify_export(report, path, jwks)
    return report


def run(path: Path, jwks_source: str, audit_log: Path | None = None) -> int:
    try:
        jwks = load_jwks(jwks_source)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"efdb verify: cannot read the JWKS {jwks_source}: {exc}\n")
        return 1
    report = verify_path(path, jwks, audit_log)
    for ok, message in report.lines:
        sys.stdout.write(f"{'ok' if ok else 'FAILED'}: {message}\n")
    if not report.valid:
        sys.stderr.write(f"efdb verify: {path}: {len(report.failures())} check(s) failed\n")
        return 1
    sys.stdout.write(f"valid: {path}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.signing.verify", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args.path, args.jwks, args.audit_log)


if __name__ == "__main__":
    sys.exit(main())
