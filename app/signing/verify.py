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
  be extended by the log now: nothing it covered was deleted or rewritten;
- a saved checkpoint with `--from URL` (or, offline, `--proof FILE` [`--newer FILE`]): the
  service's newer signed checkpoint and the RFC 9162 consistency proof from yours to it, so
  that with public material only (no event seen) it shows that the history your checkpoint
  covered was not truncated or rewritten since.

Each check prints one line; any failure makes the exit status 1 and says what failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from app.core.merkle import ProofError, verify_consistency
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
    # Read on this thread alone: a process that has started Arrow's thread pools may abort as
    # the interpreter exits, after its verdict is printed ("terminate called without an active
    # exception", exit 134: apache/arrow#34314; 1 run in 359 of `efdb verify snapshot` under
    # load). `pq.read_table` starts them even with `use_threads=False` (its dataset scanner);
    # `ParquetFile.read` and the IPC readers without threads start none.
    source = pa.BufferReader(data)
    if data[:4] == b"PAR1":
        return pq.ParquetFile(source).read(use_threads=False)
    options = ipc.IpcReadOptions(use_threads=False)
    if data[:6] == b"ARROW1":
        return ipc.open_file(source, options=options).read_all()
    return ipc.open_stream(source, options=options).read_all()


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
        try:
            table = _read_table(data)
        except (pa.ArrowInvalid, OSError) as exc:  # damaged: named, not a crash
            report.fail(f"factors.parquet: not a readable Parquet file: {exc}")
        else:
            _compare_rows(report, "factors.parquet", signed, recompute(table))
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
    every event's hash (and Merkle leaf, when the log carries it) recomputed from its content
    and the one before, the checkpoint's head still at its position, and its Merkle root (when
    it signs one) the root of the log's first `event_count` leaves."""
    from datetime import datetime

    from app.core.audit import GENESIS_HASH, canonical_event, chain_hash
    from app.core.merkle import leaf_hash, roots_at
    from app.signing.statements import chain_extends

    previous = GENESIS_HASH
    hashes, leaves = [], []
    for event in events:
        canonical = canonical_event(
            occurred_at=datetime.fromisoformat(event["occurred_at"]),
            actor=event["actor"],
            action=event["action"],
            subject_type=event["subject_type"],
            subject_id=event["subject_id"],
            payload=event["payload"],
        )
        expected = chain_hash(previous, canonical)
        if event.get("prev_hash") != previous or event.get("hash") != expected:
            report.fail(
                f"audit log: event {event.get('id')} does not hash from its content and the "
                "event before it"
            )
            return
        leaf = leaf_hash(canonical)
        if event.get("leaf_hash") not in (None, leaf):
            report.fail(
                f"audit log: event {event.get('id')}'s leaf_hash is not the {leaf} its content "
                "hashes to"
            )
            return
        hashes.append(expected)
        leaves.append(leaf)
        previous = expected
    report.ok(f"audit log: {len(hashes)} events, every hash recomputed")
    count = int(checkpoint["event_count"])
    extension = chain_extends(hashes, event_count=count, head_hash=str(checkpoint["head_hash"]))
    signed_root = checkpoint.get("root_hash")
    if not extension.ok:
        report.fail(f"{where}: {extension.reason}")
    elif signed_root is not None and roots_at(leaves, [count]).get(count) != signed_root:
        report.fail(
            f"{where}: the Merkle root of the log's first {count} events is not the signed "
            f"{signed_root}: the history was rewritten"
        )
    else:
        report.ok(f"{where}: the audit log extends the checkpoint")


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


# --------------------------------------------------------------------------- consistency


class FetchProblem(Exception):
    """The service did not answer as expected; the message says what was asked and why."""


def read_checkpoint(path: Path) -> str:
    """A saved checkpoint: its JWS, a JSON checkpoint resource (with a `jws` member), or a
    snapshot's `manifest.json` (the checkpoint it carries)."""
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("{"):
        data = json.loads(text)
        if "jws" not in data and isinstance(data.get("audit_checkpoint"), dict):
            data = data["audit_checkpoint"]
        return str(data["jws"])
    return text


def fetch_json(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail")
        except (ValueError, AttributeError):
            detail = exc.reason
        raise FetchProblem(f"{url}: HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FetchProblem(f"{url}: {exc}") from exc


def _signed_tree(
    report: Report, token: str, jwks: dict[str, Any], where: str
) -> dict[str, Any] | None:
    """A checkpoint's signed body when its signature holds and it signs a Merkle root."""
    try:
        checked = verify(token, jwks, typ=TYP_CHECKPOINT)
    except SignatureProblem as exc:
        report.fail(f"{where}: {exc}")
        return None
    body = dict(checked.json())
    if body.get("root_hash") is None or body.get("tree_size") is None:
        report.fail(
            f"{where}: signed before the audit log had a Merkle tree (no tree_size and "
            "root_hash): only the audit log itself can check it (--audit-log)"
        )
        return None
    report.ok(
        f"{where}: {body['tree_size']} events, Merkle root {body['root_hash']}, signed by "
        f"{checked.kid} ({checked.key_status}) at {checked.signed_at.isoformat()}"
    )
    return body


def verify_extension(
    report: Report,
    path: Path,
    jwks: dict[str, Any],
    *,
    from_url: str | None = None,
    proof: Path | None = None,
    newer: Path | None = None,
) -> None:
    """A saved (older) checkpoint against a newer signed checkpoint of the same service and
    the consistency proof between their Merkle trees: from the service at `from_url`, or from
    a saved proof (`proof`, with its checkpoint or `newer`)."""
    name = path.name
    try:
        old = _signed_tree(report, read_checkpoint(path), jwks, name)
    except (OSError, UnicodeError, ValueError, KeyError, TypeError) as exc:
        report.fail(
            f"{name}: not a saved checkpoint (a .jws, a JSON with `jws`, or a snapshot's "
            f"manifest.json): {exc}"
        )
        return
    if old is None:
        return
    base = (from_url or "").rstrip("/")
    answer: dict[str, Any] | None = None
    try:
        if from_url is not None:
            newer_token = str(fetch_json(f"{base}/v1/audit/checkpoints/latest")["jws"])
            where = f"{base}: newest checkpoint"
        else:
            assert proof is not None
            answer = dict(json.loads(proof.read_text(encoding="utf-8")))
            if newer is not None:
                newer_token, where = read_checkpoint(newer), newer.name
            else:
                newer_token, where = str(answer["checkpoint"]["jws"]), f"{proof.name}: checkpoint"
    except FetchProblem as exc:
        report.fail(f"cannot fetch the newer checkpoint: {exc}")
        return
    except (OSError, UnicodeError, ValueError, KeyError, TypeError) as exc:
        report.fail(
            f"no newer checkpoint to check against (--newer, or a proof that has one): {exc}"
        )
        return
    new = _signed_tree(report, newer_token, jwks, where)
    if new is None:
        return
    if new.get("issuer") != old.get("issuer"):
        report.fail(
            f"{name}: the newer checkpoint is {new.get('issuer')}'s, yours is "
            f"{old.get('issuer')}'s: not the same service"
        )
        return
    first, second = int(old["tree_size"]), int(new["tree_size"])
    if second < first:
        report.fail(
            f"{name}: truncated: the newer checkpoint (signed {new.get('signed_at')}) covers "
            f"{second} events, fewer than the {first} yours signed: events were deleted"
        )
        return
    if answer is None:
        try:
            answer = dict(fetch_json(f"{base}/v1/audit/consistency?first={first}&second={second}"))
        except FetchProblem as exc:
            report.fail(f"{name}: cannot fetch the consistency proof: {exc}")
            return
    if (answer.get("first"), answer.get("second")) != (first, second):
        report.fail(
            f"{name}: the proof is between sizes {answer.get('first')} and "
            f"{answer.get('second')}, not between your {first} and the newer {second}"
        )
        return
    try:
        verify_consistency(
            first=first,
            second=second,
            first_root=str(old["root_hash"]),
            second_root=str(new["root_hash"]),
            proof=[str(item) for item in answer.get("proof") or []],
        )
    except ProofError as exc:
        report.fail(f"{name}: history rewritten: the newer tree does not extend yours: {exc}")
        now = answer.get("first_root")
        if now is not None and now != old["root_hash"]:
            report.fail(
                f"{name}: the service now gives the root of your first {first} events as {now}, "
                f"not the {old['root_hash']} it signed: events your checkpoint covered were "
                "rewritten"
            )
        return
    report.ok(
        f"{name}: the newer checkpoint's {second} events extend your {first}: consistency "
        "proof verified (nothing you hold a checkpoint of was deleted or rewritten)"
    )


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


def run(
    path: Path,
    jwks_source: str,
    audit_log: Path | None = None,
    *,
    from_url: str | None = None,
    proof: Path | None = None,
    newer: Path | None = None,
) -> int:
    if from_url is not None and proof is not None:
        sys.stderr.write("efdb verify: --from and --proof exclude each other\n")
        return 1
    if newer is not None and proof is None:
        sys.stderr.write("efdb verify: --newer goes with --proof\n")
        return 1
    try:
        jwks = load_jwks(jwks_source)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"efdb verify: cannot read the JWKS {jwks_source}: {exc}\n")
        return 1
    if from_url is not None or proof is not None:
        report = Report()
        verify_extension(report, path, jwks, from_url=from_url, proof=proof, newer=newer)
    else:
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
    return run(
        args.path,
        args.jwks,
        args.audit_log,
        from_url=args.from_url,
        proof=args.proof,
        newer=args.newer,
    )


if __name__ == "__main__":
    sys.exit(main())
