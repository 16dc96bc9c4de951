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
        "or a saved checkpoint",
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
