"""The full seed (`EFDB_SEED_SCOPE=full`, the default of `efdb seed` and `make serve`): the
publishers' own files shipped in seed_data/, imported as real version histories."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.importers import IMPORTERS, ImportedRow
from app.main import create_app
from tests.conftest import run_efdb_in_process

SEED = Path(__file__).resolve().parents[1] / "seed_data"
SEED_README = (SEED / "README.md").read_text(encoding="utf-8")


def _imported(spec: dict[str, object], folder: Path) -> int:
    """How many factors the importer reads from a version's file (its own count, not ours)."""
    importer = IMPORTERS[str(spec["source_format"])]
    through = spec.get("through_year")
    items = importer.read(
        (folder / str(spec["file"])).read_bytes(),
        through_year=int(through) if isinstance(through, int) else None,
    )
    return sum(1 for item in items if isinstance(item, ImportedRow))


@pytest.mark.slow
@pytest.mark.dialect_neutral
def test_the_full_seed_loads_the_publishers_files_as_releases(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'full.sqlite3'}"
    env = {"EFDB_DATABASE_URL": url, "EFDB_SEED_SCOPE": "full"}
    assert run_efdb_in_process("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    seeded = run_efdb_in_process("seed", env=env, cwd=tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    assert json.loads(seeded.stdout)["factors"] > 10000

    application = create_app(Settings(database_url=url, environment="test"))
    with TestClient(application) as client:
        for dataset_file in sorted(SEED.glob("*/*/dataset.json")):
            spec = json.loads(dataset_file.read_text(encoding="utf-8"))
            if spec.get("scope") != "full":
                continue
            name = f"{dataset_file.parent.parent.name}/{spec['slug']}"
            versions = {
                v["version"]: v for v in client.get(f"/v1/datasets/{name}/versions").json()["items"]
            }
            assert set(versions) == {v["version"] for v in spec["versions"]}, name
            for version_spec in spec["versions"]:
                shipped = dataset_file.parent / version_spec["file"]
                sha256 = hashlib.sha256(shipped.read_bytes()).hexdigest()
                # The file is listed with its sha256 in seed_data/README.md …
                assert re.search(rf"`{re.escape(shipped.name)}`[^\n]*{sha256}", SEED_README)
                release = client.get(
                    f"/v1/datasets/{name}/versions/{version_spec['version']}"
                ).json()
                # … and each release is traceable to it by that sha256.
                assert release["file_sha256"] == sha256, (name, release)
                count = _imported(version_spec, dataset_file.parent)
                assert release["row_count"] == count > 0

        # DESNZ 2024 → 2025: a real diff, pairing the same factors across editions.
        diff = client.get(
            "/v1/datasets/desnz-uk/ghg-conversion-factors/versions/2025.1.0/diff?from=2024.1.1"
        ).json()
        assert diff["summary"]["changed"] > 1000
        changed = {c["factor_code"]: c for c in diff["changed"]}
        electricity = "scope-2-uk-electricity-electricity-generated-electricity-uk-kwh-kwh"
        before, after = (
            client.get(
                f"/v1/factors/desnz-uk/ghg-conversion-factors/{electricity}?version={v}"
            ).json()["co2e"]
            for v in ("2024.1.1", "2025.1.0")
        )
        assert before != after
        assert changed[electricity]["fields"]["co2e"] == {"before": before, "after": after}
        history = client.get(
            f"/v1/factors/desnz-uk/ghg-conversion-factors/{electricity}/history"
        ).json()
        # 2022 names this row's Level 4 "2020" where later editions say "kWh": another code.
        assert [h["version"] for h in history["items"]] == ["2025.1.0", "2024.1.1", "2023.1.1"]
    application.state.engine.dispose()
