"""Python's own work per upload row, in process and without a database write: the CSV read
as an upload reads it, every row validated as `upload_draft` validates it (`_valid_records`,
with the report, activity labels and duplicate-code bookkeeping), and each row built and
formatted as the upload's COPY sends it (`store_factors` with psycopg's binary COPY formatter in
place of the connection; sources resolved without a query).

    python -m bench.ingest_python [--rows 20000] [--repeat 3]

Prints the best of `--repeat` runs as CPU microseconds per row (`time.process_time`: less
moved by other work on a shared machine than the wall clock). The reference data is the one
`seed_data/reference/` ships; the label collector reads a temporary SQLite database built by
the migrations.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

from psycopg import postgres
from psycopg._copy_base import BinaryFormatter
from psycopg.adapt import Transformer
from psycopg.pq import Format
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from app.core.db import make_engine
from app.core.migrations import upgrade_to_head
from app.factors.validation import shipped_record_reference
from app.publishing import drafts, publish
from app.publishing.labels import label_collector
from app.publishing.upload_formats import UploadFormat, read_rows
from bench.ingest import COLUMNS, synthetic_rows

# The PostgreSQL type of each column the draft's COPY writes, by the name SQLAlchemy gives it
# (what `FactorWriter` reads from the server's catalogue).
_PG_TYPES = {
    "VARCHAR": "varchar",
    "TEXT": "text",
    "SMALLINT": "int2",
    "INTEGER": "int4",
    "DOUBLE PRECISION": "float8",
    "DATE": "date",
}


class _FormattingWriter:
    """A draft's `FactorWriter` that formats each row for its binary COPY and keeps nothing."""

    draft = True

    def __init__(self) -> None:
        transformer = Transformer()
        dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
        names = [
            _PG_TYPES[str(publish.DRAFT_TABLE.c[column].type.compile(dialect)).split("(")[0]]
            for column in publish._DRAFT_COLUMNS
        ]
        transformer.set_dumper_types([postgres.types[name].oid for name in names], Format.BINARY)
        self._formatter = BinaryFormatter(transformer)

    def write(self, row: Sequence[Any]) -> None:
        self._formatter.write_row(row)

    def pause(self) -> None:
        self._formatter.end()


class _NoQuerySources:
    def __init__(self, session: Session) -> None:
        pass

    def cached_id(self, record: object) -> int:
        return 1

    def source_id(self, record: object) -> int:
        return 1


class _Version:
    id, dataset_id, row_count = 1, 1, 0


def one_run(session: Session, content: bytes, count: int) -> float:
    started = time.process_time()
    rows = read_rows(UploadFormat.CSV, io.BytesIO(content))
    report = drafts.UploadReport()
    records = drafts._valid_records(
        rows,
        report,
        count + 1,
        shipped_record_reference(),
        label_collector(session, publisher="bench-synthetic"),
        text_cells=True,
        stored_codes=dict,
    )
    with mock.patch.object(publish, "SourceCache", _NoQuerySources):
        stored = publish.store_factors(
            session,
            version=_Version(),  # type: ignore[arg-type]
            records=records,
            writer=_FormattingWriter(),  # type: ignore[arg-type]
        )
    seconds = time.process_time() - started
    if stored != count or report.error_count:
        raise RuntimeError(f"{stored} rows stored, report {report.as_dict()}")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_python", description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(synthetic_rows(args.rows, 20251125))
    content = buffer.getvalue().encode()
    with tempfile.TemporaryDirectory(prefix="efdb-bench-ingest-python-") as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'bench.sqlite3'}")
        try:
            upgrade_to_head(engine)
            with Session(engine) as session:
                runs = [one_run(session, content, args.rows) for _ in range(args.repeat)]
        finally:
            engine.dispose()
    best = min(runs)
    print(
        f"{args.rows:,} rows: best of {args.repeat} {best:.2f} s CPU = "
        f"{best / args.rows * 1e6:.1f} µs per row (runs: {', '.join(f'{r:.2f}' for r in runs)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
