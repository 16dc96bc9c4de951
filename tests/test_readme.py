"""The README is a promise: every command and request it shows is one that works."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine

from app.cli import build_parser
from app.core.db import make_sessionmaker
from app.datasets.models import Dataset, Publisher
from app.factors.schemas import FactorFields
from app.factors.validation import load_record_reference
from app.publishing.records import parse_record, read_csv_rows
from tests.factories import create_version

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_layout_lists_every_package_and_draws_the_import_layers() -> None:
    layout = README.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    packages = {path.parent.name for path in (ROOT / "app").glob("*/__init__.py")}
    assert set(re.findall(r"`app/(\w+)/`", layout)) == packages
    # The drawing is the import-linter contract that `make lint` checks, top layer first.
    drawing = re.findall(r"```text\n(.*?)```", layout, flags=re.DOTALL)[0]
    drawn = [
        " | ".join(
            name.strip().removesuffix(".py").replace("/", ".")
            for name in re.split(r"\s{2,}", line)[0].split("·")
        )
        for line in drawing.splitlines()
    ]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert drawn == config["tool"]["importlinter"]["contracts"][0]["layers"]


def test_make_targets_exist() -> None:
    shown = set(re.findall(r"^make (\w+)$", README, flags=re.MULTILINE))
    assert {"serve", "test"} <= shown  # the two set-up commands (and `make bench`)
    for target in shown:
        assert re.search(rf"^{target}:", MAKEFILE, flags=re.MULTILINE), target


def recipe(target: str) -> str:
    match = re.search(rf"^{target}:[^\n]*\n((?:\t[^\n]*\n)+)", MAKEFILE, flags=re.MULTILINE)
    assert match, target
    return match.group(1)


def test_ci_runs_the_readme_test_command() -> None:
    # `.ci/run` runs the README's `make test`, which lints and runs every test side by side.
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), flags=re.MULTILINE)
    assert "lint-checks pytest" in recipe("test")
    assert "lint-checks" in recipe("lint")


def test_every_efdb_command_shown_is_one_the_cli_has() -> None:
    commands = re.findall(r"`(efdb [^`]+)`", README) + re.findall(
        r"\.venv/bin/(efdb [^\n]+)", README
    )
    assert len(commands) >= 5
    parser = build_parser()
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])


CURL_URLS = re.findall(r"curl '(http://127\.0\.0\.1:8000[^']+)'", README)


@pytest.mark.parametrize("url", CURL_URLS)
def test_curl_examples_answer(client: TestClient, seeded: None, url: str) -> None:
    parts = urlsplit(url)
    response = client.get(f"{parts.path}?{parts.query}" if parts.query else parts.path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("items", [body]), "an example should show data"


def test_content_hash_recipe_verifies_a_seed_version(
    served: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (recipe,) = [block for block in code_blocks("python") if "BASE = " in block]
    exec(recipe.replace('BASE = "http://127.0.0.1:8000"', f'BASE = "{served}"'), {})
    assert "content_sha256 verified" in capsys.readouterr().out


# The double-quoted examples are the ones whose answer depends on the database's history; the
# README says what each answers on a fresh `make serve`, and these tests hold it to that.
QUOTED_URLS = re.findall(r'curl "(http://127\.0\.0\.1:8000[^"]+)"', README)
AS_OF_URLS = [url for url in QUOTED_URLS if "as_of=" in url]
DIFF_URLS = [url for url in QUOTED_URLS if "/diff?" in url]


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def test_every_quoted_example_is_one_of_these() -> None:
    assert sorted(QUOTED_URLS) == sorted(AS_OF_URLS + DIFF_URLS)
    assert AS_OF_URLS
    assert DIFF_URLS


def test_as_of_examples_answer_as_the_readme_says(client: TestClient, seeded: None) -> None:
    """Before the seed was published the lookup is a 404 naming the date; the search is empty."""
    for url in AS_OF_URLS:
        response = client.get(_path(url))
        if "/v1/factors?" in url:
            assert response.status_code == 200, response.text
            assert response.json()["items"] == []
        else:
            assert response.status_code == 404, response.text
            assert "was current at the end of 2024-12-31" in response.json()["detail"]
        today = client.get(_path(url).replace("2024-12-31", date.today().isoformat()))
        assert today.status_code == 200, today.text
        assert today.json().get("items", [today.json()])


def test_diff_example_answers_once_a_newer_release_is_published(
    client: TestClient, seeded: None, db: Engine
) -> None:
    (url,) = DIFF_URLS
    parts = urlsplit(url)
    publisher, dataset, _, newer = parts.path.split("/")[3:7]
    older = parse_qs(parts.query)["from"][0]
    assert client.get(_path(url)).status_code == 404  # the seed has one release per dataset
    # A synthetic correction of the seeded release, in this test's database only.
    with make_sessionmaker(db).begin() as session:
        dataset_row = session.scalars(
            select(Dataset)
            .join(Publisher, Publisher.id == Dataset.publisher_id)
            .where(Publisher.slug == publisher, Dataset.slug == dataset)
        ).one()
        # The seeded release's rows, read from its file as the seed loader reads them.
        reference = load_record_reference(session)
        seed_file = ROOT / "seed_data" / publisher / dataset / f"{older}.csv"
        parsed = [parse_record(row, cells, reference) for row, cells in read_csv_rows(seed_file)]
        rows = sorted(
            (record for record in parsed if isinstance(record, FactorFields)),
            key=lambda record: record.factor_code,
        )
        assert len(rows) == len(parsed), "the seed file parses without problems"
        corrected = rows[0].model_copy(
            update={"co2e": rows[0].co2e + 0.01, "notes": "Synthetic correction for a test."}
        )
        create_version(session, dataset=dataset_row, version=newer, factors=[corrected, *rows[1:]])
    response = client.get(_path(url))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from"], body["to"]) == (older, newer)
    assert body["summary"] == {"added": 0, "removed": 0, "changed": 1}
    (change,) = body["changed"]
    assert change["factor_code"] == rows[0].factor_code
    assert change["fields"]["co2e"] == {"before": rows[0].co2e, "after": corrected.co2e}


# --- Worked answers (the accounting section): each `http` request's answer contains its `json`

WORKED = re.findall(r"```http\n(.*?)```\s*```json\n(.*?)```", README, flags=re.DOTALL)


def _request_of(block: str) -> tuple[str, str, dict[str, str], Any]:
    head, _, body = block.partition("\n\n")
    request_line, *header_lines = head.strip().splitlines()
    method, path = request_line.split(" ", 1)
    headers = dict(line.split(": ", 1) for line in header_lines)
    return method, path, headers, json.loads(body) if body.strip() else None


def _contains(actual: Any, expected: Any, where: str = "$") -> list[str]:
    """Where `actual` differs from the excerpt `expected` (dict members and list items shown)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: not an object"]
        return [
            problem
            for name, value in expected.items()
            for problem in (
                _contains(actual[name], value, f"{where}.{name}")
                if name in actual
                else [f"{where}.{name}: missing"]
            )
        ]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: {actual!r} is not a list of {len(expected)}"]
        return [
            p
            for i, (a, e) in enumerate(zip(actual, expected, strict=True))
            for p in _contains(a, e, f"{where}[{i}]")
        ]
    return (
        []
        if actual == expected and type(actual) is type(expected)
        else [f"{where}: {actual!r} != {expected!r}"]
    )


def _synthetic_declared_interval(db: Engine) -> None:
    """The README's synthetic fixture (not a real emission factor), as it describes it."""
    from tests.factories import create_dataset_with_factors, factor_fields

    with make_sessionmaker(db)() as session:
        create_dataset_with_factors(
            session,
            publisher="synthetic-readme",
            dataset="declared-uncertainty",
            factors=[
                factor_fields(
                    "heat-ci95",
                    activity_id="synthetic-heat",
                    unit="GJ",
                    co2e=2.0,
                    uncertainty_low=1.5,
                    uncertainty_high=2.5,
                    uncertainty_kind="confidence_interval",
                    uncertainty_confidence_level=0.95,
                )
            ],
        )
        session.commit()


def test_the_accounting_section_has_its_worked_answers() -> None:
    shown = " ".join(request for request, _ in WORKED)
    assert "gwp=AR6" in shown
    assert "heat-ci95" in shown
    assert "Accept-Language: zh-CN" in shown


@pytest.mark.parametrize(("request_block", "excerpt"), WORKED)
def test_worked_answers_are_what_the_service_answers(
    client: TestClient, seeded: None, db: Engine, request_block: str, excerpt: str
) -> None:
    _synthetic_declared_interval(db)
    method, path, headers, body = _request_of(request_block)
    response = client.request(method, path, headers=headers, json=body)
    expected = json.loads(excerpt)
    assert response.status_code == expected.get("status", 200), response.text
    assert _contains(response.json(), expected) == []
    if "Accept-Language" in headers:
        assert response.headers["content-language"] == "zh-CN"
        assert "Accept-Language" in {v.strip() for v in response.headers["vary"].split(",")}
