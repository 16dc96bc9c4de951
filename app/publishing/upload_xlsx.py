"""What an XLSX upload holds and will cost to read, judged before any cell is read.

An XLSX file is a zip of XML parts. A few kilobytes of it can declare gigabytes of XML, and the
reader (calamine) holds a whole sheet in memory, so before it is given the file:
- the zip's directory is read: at most ``MAX_ZIP_ENTRIES`` parts, whose declared uncompressed
  sizes add up to at most ``UploadLimits.max_decoded_bytes`` (Python's zip reader never
  inflates a part past its declared size);
- the sheet to read is chosen: the one named ``factors``, otherwise the first;
- that sheet's XML is streamed once (never held whole): rows holding a value are counted
  against ``UploadLimits.max_rows``, cells against ``MAX_XLSX_CELLS``, and every formula cell
  is noted with its place, because a formula's value in the file is whatever the spreadsheet
  last computed (or nothing, from a script that never computed it), not a published figure.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from typing import IO
from xml.etree import ElementTree

from app.publishing.upload_limits import UploadLimits, UploadTooCostly

MAX_ZIP_ENTRIES = 10_000
# calamine keeps a sheet's cells in memory (about 32 bytes each, plus the text): 10 million
# cells is a sheet of 190,000 rows of every column, about 0.5 GB while it is read.
MAX_XLSX_CELLS = 10_000_000
# workbook.xml and its relationships name the sheets; a few megabytes at most in any real file.
MAX_PART_BYTES = 16 * 1024 * 1024
FACTORS_SHEET = "factors"

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_STRICT = "{http://purl.oclc.org/ooxml/spreadsheetml/main}"
_REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_STRICT_REL_ID = "{http://purl.oclc.org/ooxml/officeDocument/relationships}id"
_CELL_REF = re.compile(r"^([A-Z]{1,3})([0-9]{1,7})$")


class NotAWorkbook(Exception):
    """The file is not an XLSX workbook this reader can open."""


@dataclass
class SheetScan:
    """The chosen sheet: its name, and what streaming its XML found."""

    name: str
    rows: int = 0
    cells: int = 0
    # (Excel row number, 0-based column index) of each formula cell, in sheet order.
    formulas: list[tuple[int, int]] = field(default_factory=list)


def column_index(letters: str) -> int:
    """0-based index of an Excel column name: A → 0, Z → 25, AA → 26."""
    index = 0
    for letter in letters:
        index = index * 26 + (ord(letter) - ord("A") + 1)
    return index - 1


def column_letters(index: int) -> str:
    """Excel column name of a 0-based index: 0 → A, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _read_part(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError as exc:
        raise NotAWorkbook(f"it has no {name}") from exc
    if info.file_size > MAX_PART_BYTES:
        raise NotAWorkbook(f"its {name} is larger than {MAX_PART_BYTES // (1024 * 1024)} MB")
    with archive.open(info) as handle:
        return handle.read(MAX_PART_BYTES + 1)


def _parse(data: bytes, name: str) -> ElementTree.Element:
    if b"<!DOCTYPE" in data[:4096].upper():  # no OOXML part has one; entity tricks do
        raise NotAWorkbook(f"its {name} declares a document type")
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise NotAWorkbook(f"its {name} is not well-formed XML ({exc})") from exc


def _sheet_paths(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(name, part path) of each worksheet, in workbook order."""
    workbook = _parse(_read_part(archive, "xl/workbook.xml"), "xl/workbook.xml")
    relations = _parse(
        _read_part(archive, "xl/_rels/workbook.xml.rels"), "xl/_rels/workbook.xml.rels"
    )
    targets = {
        element.get("Id"): element.get("Target", "")
        for element in relations
        if _local(element.tag) == "Relationship"
    }
    sheets = []
    for element in workbook.iter():
        if _local(element.tag) != "sheet":
            continue
        relation = element.get(_REL_ID) or element.get(_STRICT_REL_ID)
        target = targets.get(relation)
        if target is None:
            continue
        path = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        sheets.append((element.get("name", ""), path))
    if not sheets:
        raise NotAWorkbook("it has no worksheet")
    return sheets


def choose_sheet(names: list[str]) -> str:
    """The sheet named `factors` (any case), otherwise the first."""
    return next((name for name in names if name.casefold() == FACTORS_SHEET), names[0])


def scan_workbook(stream: IO[bytes], limits: UploadLimits) -> SheetScan:
    """Check the workbook's declared sizes and stream its factors sheet; raise NotAWorkbook or
    UploadTooCostly. The stream is left at its start."""
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError) as exc:
        raise NotAWorkbook("it is not a readable zip archive") from exc
    try:
        with archive:
            return _scan(archive, limits)
    except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, ValueError) as exc:
        raise NotAWorkbook(f"it is damaged ({exc})") from exc
    except ElementTree.ParseError as exc:
        raise NotAWorkbook(f"its sheet is not well-formed XML ({exc})") from exc
    finally:
        stream.seek(0)


def _scan(archive: zipfile.ZipFile, limits: UploadLimits) -> SheetScan:
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise UploadTooCostly(
            "too_many_parts", f"the workbook has {len(infos)} parts; at most {MAX_ZIP_ENTRIES}"
        )
    declared = sum(info.file_size for info in infos)
    if declared > limits.max_decoded_bytes:
        mib = 1024 * 1024
        raise UploadTooCostly(
            "uncompressed_too_large",
            f"the workbook uncompresses to {declared / mib:.0f} MB; an upload may decode to "
            f"at most {limits.max_decoded_bytes / mib:.0f} MB",
        )
    sheets = _sheet_paths(archive)
    name = choose_sheet([sheet_name for sheet_name, _ in sheets])
    path = dict(sheets)[name]
    scan = SheetScan(name)
    try:
        handle = archive.open(path)
    except KeyError as exc:
        raise NotAWorkbook(f"its sheet '{name}' is missing ({path})") from exc
    with handle:
        head = handle.peek(4096) if hasattr(handle, "peek") else b""
        if b"<!DOCTYPE" in head[:4096].upper():
            raise NotAWorkbook(f"its sheet '{name}' declares a document type")
        row_number = 0
        row_has_value = False
        for _, element in ElementTree.iterparse(handle, events=("end",)):
            tag = element.tag
            if tag in (f"{_MAIN}c", f"{_STRICT}c"):
                children = {_local(child.tag) for child in element}
                if "f" in children:
                    found = _CELL_REF.match(element.get("r", ""))
                    if found is not None:
                        scan.formulas.append((int(found[2]), column_index(found[1])))
                    else:
                        scan.formulas.append((row_number, -1))
                if children & {"v", "is", "f"}:
                    row_has_value = True
                    scan.cells += 1
                    if scan.cells > MAX_XLSX_CELLS:
                        raise UploadTooCostly(
                            "too_many_cells",
                            f"the sheet '{name}' has more than {MAX_XLSX_CELLS:,} cells; upload "
                            "a larger file as CSV or Parquet",
                        )
            elif tag in (f"{_MAIN}row", f"{_STRICT}row"):
                row_number = int(element.get("r") or row_number + 1)
                if row_has_value:  # a row of formatting only is no row of data
                    row_has_value = False
                    scan.rows += 1
                    # The header row is not a factor.
                    if scan.rows - 1 > limits.max_rows:
                        raise UploadTooCostly(
                            "too_many_rows",
                            f"the sheet '{name}' has more than {limits.max_rows} rows; an "
                            f"upload may have at most {limits.max_rows}",
                        )
                element.clear()
    return scan
