"""The arguments of `efdb verify` and `python -m app.signing.verify`, in a module of their
own so that the `efdb` command builds its parser without importing pyarrow."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        type=Path,
        help="a snapshot folder or its manifest.json, a Parquet or Arrow export, a release.jws "
        "or a saved checkpoint (its .jws, the JSON of GET /v1/audit/checkpoints/latest, or with "
        "--from/--proof a snapshot's manifest.json, whose checkpoint is used)",
    )
    parser.add_argument(
        "--jwks", required=True, help="the service's public keys: a file or an http(s) URL"
    )
    parser.add_argument(
        "--audit-log",
        type=Path,
        metavar="FILE",
        help="with a saved checkpoint: the audit log now (GET /v1/audit pages as JSON); checks "
        "that it still extends the checkpoint",
    )
    parser.add_argument(
        "--from",
        dest="from_url",
        metavar="URL",
        help="with a saved checkpoint: the service's base URL (e.g. https://efdb.example.org); "
        "fetches its newest signed checkpoint and the consistency proof from yours to it, and "
        "checks that its history still extends your checkpoint",
    )
    parser.add_argument(
        "--proof",
        type=Path,
        metavar="FILE",
        help="with a saved checkpoint, offline: a saved GET /v1/audit/consistency answer; its "
        "newer checkpoint is the one it carries, or --newer",
    )
    parser.add_argument(
        "--newer",
        type=Path,
        metavar="FILE",
        help="with --proof: the newer signed checkpoint the proof leads to (.jws or JSON)",
    )
