"""The published export schema, written out: the download format users' scripts rely on.

The export tests compare files against the app's own EXPORT_SCHEMA, which a retyped column
would change too; here the columns, their Arrow types and nullability are a literal (README,
"The export schema"), so that any change to the published format fails until it is made on
purpose (with `SCHEMA_VERSION` bumped and this literal and the README table updated).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from app.exports.schema import EXPORT_SCHEMA, SCHEMA_VERSION

DICT = pa.dictionary(pa.int32(), pa.string())
# (column, Arrow type, nullable), in file order: export schema version 3.
PUBLISHED_VERSION = 3
PUBLISHED_COLUMNS: list[tuple[str, pa.DataType, bool]] = [
    ("publisher", DICT, False),
    ("dataset", DICT, False),
    ("version", DICT, False),
    ("published_at", pa.timestamp("us", tz="UTC"), False),
    ("factor_code", pa.string(), False),
    ("activity_id", DICT, False),
    ("name_zh", pa.string(), True),
    ("name_en", pa.string(), True),
    ("description", pa.string(), True),
    ("category", DICT, True),
    ("product_code_scheme", DICT, True),
    ("product_code", pa.string(), True),
    ("region", DICT, False),
    ("reference_year", pa.int16(), False),
    ("valid_from", pa.date32(), True),
    ("valid_to", pa.date32(), True),
    ("unit", DICT, False),
    ("co2e", pa.float64(), False),
    ("co2", pa.float64(), True),
    ("ch4", pa.float64(), True),
    ("n2o", pa.float64(), True),
    ("other_ghg_co2e", pa.float64(), True),
    ("biogenic_co2", pa.float64(), True),
    ("ch4_origin", DICT, True),
    ("gwp_set", DICT, True),
    ("boundary", DICT, False),
    ("method", DICT, True),
    ("uncertainty_low", pa.float64(), True),
    ("uncertainty_high", pa.float64(), True),
    ("uncertainty_distribution", DICT, True),
    ("uncertainty_kind", DICT, True),
    ("uncertainty_confidence_level", pa.float64(), True),
    ("dq_reliability", pa.int8(), True),
    ("dq_completeness", pa.int8(), True),
    ("dq_temporal", pa.int8(), True),
    ("dq_geographical", pa.int8(), True),
    ("dq_technological", pa.int8(), True),
    ("source_title", DICT, False),
    ("source_publisher", DICT, True),
    ("source_year", pa.int16(), True),
    ("source_url", DICT, True),
    ("source_doi", DICT, True),
    ("source_locator", pa.string(), True),
    ("notes", pa.string(), True),
    ("dqr", pa.float64(), True),
    ("uid", pa.string(), False),
    ("license_id", DICT, False),
    ("license_url", DICT, True),
    ("attribution", DICT, False),
]


def test_the_export_schema_is_the_published_one() -> None:
    assert SCHEMA_VERSION == PUBLISHED_VERSION
    actual = [(f.name, f.type, f.nullable) for f in EXPORT_SCHEMA]
    assert actual == PUBLISHED_COLUMNS


# The README's words for the types, as Arrow types.
README_TYPES = {
    "dictionary string": DICT,
    "string": pa.string(),
    "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
    "int16": pa.int16(),
    "int8": pa.int8(),
    "date32": pa.date32(),
    "float64": pa.float64(),
}


def _readme_table() -> dict[str, tuple[pa.DataType, bool]]:
    """column -> (type, said to be not null) from README's export-schema table."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The export schema", 1)[1].split("\n\n", 3)[2]
    found: dict[str, tuple[pa.DataType, bool]] = {}
    for line in section.splitlines()[2:]:
        columns, kind = line.split("|")[1:3]
        kind = kind.strip()
        not_null = kind.endswith(", not null")
        arrow = README_TYPES[kind.removesuffix(", not null")]
        for name in re.findall(r"`([a-z0-9_]+)`", columns):
            found[name] = (arrow, not_null)
    return found


def test_the_readme_documents_the_published_schema() -> None:
    documented = _readme_table()
    assert set(documented) == {name for name, _, _ in PUBLISHED_COLUMNS}
    for name, arrow, nullable in PUBLISHED_COLUMNS:
        documented_type, not_null = documented[name]
        assert documented_type == arrow, name
        if not_null:
            assert not nullable, name


@pytest.mark.parametrize("name", ["co2e", "co2", "ch4", "n2o", "biogenic_co2"])
def test_quantities_say_their_unit(name: str) -> None:
    metadata = EXPORT_SCHEMA.field(name).metadata
    assert metadata is not None
    assert b"per declared `unit`" in metadata[b"unit"]
