"""`EFDB_DATA_DIR`: one setting places everything the service writes; a setting of its own
still moves one thing elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.core.config import Settings


@pytest.fixture(autouse=True)
def _no_efdb_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [name for name in os.environ if name.startswith("EFDB_")]:
        monkeypatch.delenv(name)


def test_default_is_var_of_the_working_directory() -> None:
    settings = Settings(_env_file=None)
    assert settings.data_dir == Path("var")
    assert settings.database_url == "sqlite:///var/efdb.sqlite3"
    assert settings.generated_signing_key == Path("var/signing-key.pem")
    assert settings.generated_release_signing_key == Path("var/release-signing-key.pem")
    assert settings.export_dir == Path("var/exports")


def test_data_dir_moves_database_keys_and_exports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EFDB_DATA_DIR", str(tmp_path))
    settings = Settings(_env_file=None)
    assert settings.database_url == f"sqlite:///{tmp_path}/efdb.sqlite3"
    assert settings.generated_signing_key == tmp_path / "signing-key.pem"
    assert settings.generated_release_signing_key == tmp_path / "release-signing-key.pem"
    assert settings.export_dir == tmp_path / "exports"


def test_an_explicit_setting_wins_over_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EFDB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EFDB_EXPORT_DIR", str(tmp_path / "big-disk"))
    monkeypatch.setenv("EFDB_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1:5432/efdb")
    settings = Settings(_env_file=None)
    assert settings.export_dir == tmp_path / "big-disk"
    assert settings.database_url == "postgresql+psycopg://u@127.0.0.1:5432/efdb"
    assert settings.generated_signing_key == tmp_path / "data" / "signing-key.pem"
    # Given in code, as the tests' settings are.
    assert Settings(_env_file=None, export_dir=tmp_path / "x").export_dir == tmp_path / "x"


def test_the_readme_lists_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`(EFDB_[A-Z0-9_]+)`", readme))
    missing = [
        f"EFDB_{name.upper()}"
        for name in Settings.model_fields
        if f"EFDB_{name.upper()}" not in listed
    ]
    assert missing == [], f"README's configuration tables do not list {missing}"
