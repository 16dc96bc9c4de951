"""The README is a promise: every command and request it shows is one that works."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from app.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_make_targets_exist() -> None:
    shown = set(re.findall(r"^make (\w+)$", README, flags=re.MULTILINE))
    assert {"serve", "test"} <= shown
    for target in shown:
        assert re.search(rf"^{target}:", MAKEFILE, flags=re.MULTILINE), target


def test_ci_runs_the_readme_test_command() -> None:
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), flags=re.MULTILINE)


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
