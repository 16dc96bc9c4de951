"""A snapshot's openLCA and ILCD packages, assembled from its releases' own packages.

A snapshot can hold a million factors, and the per-version writers (app.exports.olca,
app.exports.ilcd) run at 600–1,000 rows a second; writing the snapshot's packages from its
rows would take the better part of an hour each. Each release's `export.jsonld.zip` and
`export.ilcd.zip` is written once (on its first download, or by `efdb exports prepare`) and
never changes, so a snapshot's package is those packages' entries, copied in release order:

- every entry is one entity in its own file named by its UUID (`processes/<uuid>.json`,
  `ILCD/flows/<uuid>.xml`, …), written by olca-schema's writer or, for ILCD, validated against
  its XSD when the release's package was written; an entry is copied as it is (inflated and
  deflated again by `zipfile`, never parsed or rewritten);
- a process (one per factor, its UUID derived from `publisher/dataset/code@version`) appears
  in one release only; the shared entities (unit groups, flow properties, the gases'
  elementary flows, locations, sources, the pedigree system, contacts) carry UUIDs derived
  from what they are, so the same name is the same entity: it is copied once, from the first
  release that has it (`olca-schema.json` likewise).
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path

from app.exports.writer import WrittenFile, atomic_path, written

_COPY_CHUNK = 1 << 20


def merge_packages(target: Path, sources: Iterable[Path]) -> WrittenFile:
    """One zip of every entry of `sources`, in their order, each entry name once (the first)."""
    seen: set[str] = set()
    with (
        atomic_path(target) as temporary,
        zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as merged,
    ):
        for source in sources:
            with zipfile.ZipFile(source) as package:
                for info in package.infolist():
                    if info.filename in seen or info.is_dir():
                        continue
                    seen.add(info.filename)
                    entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                    entry.compress_type = zipfile.ZIP_DEFLATED
                    entry.external_attr = info.external_attr
                    with package.open(info) as reader, merged.open(entry, "w") as writer:
                        shutil.copyfileobj(reader, writer, _COPY_CHUNK)
    return written(target)
