"""Properties of the version diff: applied to the old version, it gives the new one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.http_cache import json_bytes
from app.factors.schemas import UPLOADABLE_FIELDS
from app.versioning.diff import DiffDoesNotApply, apply_diff, merge_diff
from tests.factor_strategies import (
    MUTABLE_FIELDS,
    changed_value,
    example_record,
    records,
    versions,
)

# 50 examples: a record now draws every uploadable field (40, not 17 as before), so 50 draw
# more field values than the former 100 did, in about the same time.
FAST = settings(max_examples=50, deadline=None)


def by_code(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r["factor_code"])


def full(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as the database returns them: every uploadable field, None where empty."""
    return [{name: row.get(name) for name in UPLOADABLE_FIELDS} for row in by_code(rows)]


@st.composite
def edited(draw: st.DrawFn, old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A next version: some factors kept, some edited field by field, some dropped, some new."""
    new: list[dict[str, Any]] = []
    for row in old:
        fate = draw(st.sampled_from(["keep", "edit", "drop"]))
        if fate == "drop":
            continue
        row = dict(row)
        if fate == "edit":
            for name in draw(st.sets(st.sampled_from(MUTABLE_FIELDS), min_size=1, max_size=3)):
                row[name] = changed_value(name, row[name])
        new.append(row)
    taken = {row["factor_code"] for row in old}
    extra = draw(st.lists(records(), max_size=3, unique_by=lambda r: r["factor_code"]))
    return new + [row for row in extra if row["factor_code"] not in taken]


@FAST
@given(data=st.data())
def test_applying_the_diff_to_the_old_version_gives_the_new_one(data: Any) -> None:
    old = data.draw(versions())
    new = data.draw(edited(old) | versions())  # an edit of the old one, or any other version
    diff = merge_diff(full(old), full(new))
    assert apply_diff(full(old), diff) == full(new)
    summary = diff["summary"]
    assert (summary["added"], summary["removed"], summary["changed"]) == (
        len(diff["added"]),
        len(diff["removed"]),
        len(diff["changed"]),
    )
    assert diff["added"] == [record["factor_code"] for record in diff["added_factors"]]
    for change in diff["changed"]:
        assert change["fields"], "a changed factor names at least one field"
        assert all(v["before"] != v["after"] for v in change["fields"].values())


@FAST
@given(data=st.data())
def test_the_diff_applies_as_a_client_receives_it(data: Any) -> None:
    """Over the wire (JSON: dates become strings), applied to the old version's JSON rows."""
    old = data.draw(versions())
    new = data.draw(edited(old))
    wire = json.loads(json_bytes(merge_diff(full(old), full(new))))
    old_json, new_json = (json.loads(json_bytes(full(rows))) for rows in (old, new))
    assert apply_diff(old_json, wire) == new_json


@FAST
@given(old=versions())
def test_a_version_against_itself_has_an_empty_diff(old: list[dict[str, Any]]) -> None:
    diff = merge_diff(full(old), full(old))
    assert diff["summary"] == {"added": 0, "removed": 0, "changed": 0}
    assert apply_diff(full(old), diff) == full(old)


@FAST
@given(data=st.data())
def test_the_reverse_diff_undoes_the_diff(data: Any) -> None:
    old = data.draw(versions())
    new = data.draw(edited(old))
    forward, backward = merge_diff(full(old), full(new)), merge_diff(full(new), full(old))
    assert apply_diff(apply_diff(full(old), forward), backward) == full(old)
    assert sorted(forward["added"]) == sorted(backward["removed"])


def test_a_diff_refuses_rows_it_was_not_made_from() -> None:
    old = [{"factor_code": "synthetic-a", "co2e": 1.0}, {"factor_code": "synthetic-b", "co2e": 2.0}]
    new = [{"factor_code": "synthetic-a", "co2e": 1.5}]
    diff = merge_diff(full(old), full(new))
    with pytest.raises(DiffDoesNotApply):
        apply_diff(full(new), diff)  # synthetic-b is not there to remove
    other = [{"factor_code": "synthetic-a", "co2e": 9.0}, old[1]]
    with pytest.raises(DiffDoesNotApply):
        apply_diff(full(other), diff)  # synthetic-a's co2e is not the diff's `before`


# Every field a publisher uploads, from the app's own list: a field the diff left out would
# make an edit invisible to a client updating its copy.
COMPARED_FIELDS = [name for name in UPLOADABLE_FIELDS if name != "factor_code"]


@pytest.mark.parametrize("name", COMPARED_FIELDS)
def test_changing_one_field_shows_exactly_that_field(name: str) -> None:
    old = example_record()
    for after in (changed_value(name, old[name]), None):  # an edited cell, then an emptied one
        new = {**old, name: after}
        diff = merge_diff(full([old]), full([new]))
        assert diff["changed"] == [
            {
                "factor_code": old["factor_code"],
                "fields": {name: {"before": old[name], "after": after}},
            }
        ]
        assert apply_diff(full([old]), diff) == full([new])
