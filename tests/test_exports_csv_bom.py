"""`export.csv?bom=1`: the same CSV after a UTF-8 byte order mark (for Excel on Windows), a
file of its own with its own ETag."""

from __future__ import annotations

import codecs
import hashlib
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.test_exports import IMMUTABLE, version_url


def test_the_csv_with_a_byte_order_mark_is_the_csv_after_the_mark(
    client: TestClient, seeded: None
) -> None:
    base = version_url("mee-cn", "cn-electricity-co2", "1.0.0") + "/export.csv"
    plain = client.get(base)
    marked = client.get(base + "?bom=1")
    assert plain.status_code == marked.status_code == 200, marked.text
    assert not plain.content.startswith(codecs.BOM_UTF8)
    assert marked.content == codecs.BOM_UTF8 + plain.content
    assert marked.headers["etag"] == f'"{hashlib.sha256(marked.content).hexdigest()}"'
    assert marked.headers["etag"] != plain.headers["etag"]
    assert marked.headers["cache-control"] == IMMUTABLE
    assert marked.headers["content-type"].startswith("text/csv")
    assert "生态环境部" in marked.content.decode("utf-8-sig")
    again = client.get(base + "?bom=1", headers={"If-None-Match": marked.headers["etag"]})
    assert again.status_code == 304


def test_the_readme_recipe_checks_the_byte_order_mark(
    client: TestClient, seeded: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    (recipe,) = [b for b in blocks if "export-bom.csv" in b]
    base = version_url("mee-cn", "cn-electricity-co2", "1.0.0") + "/export.csv"
    (tmp_path / "export.csv").write_bytes(client.get(base).content)
    (tmp_path / "export-bom.csv").write_bytes(client.get(base + "?bom=1").content)
    monkeypatch.chdir(tmp_path)
    exec(recipe, {})
    (tmp_path / "export-bom.csv").write_bytes(client.get(base).content)  # no mark: refused
    with pytest.raises(AssertionError):
        exec(recipe, {})
