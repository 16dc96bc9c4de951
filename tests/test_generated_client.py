"""The API as a user's generated client sees it: code generated from openapi/openapi.json.

openapi-python-client turns the published document into a typed Python package; these tests
call the service through that package, so a drift between the document and the behaviour
(a renamed field, an undocumented status) fails here.
"""

from __future__ import annotations

import importlib
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from app.cli import OPENAPI_PATH
from app.core.config import PROJECT_ROOT
from tests.auth_fixtures import TokenKit
from tests.test_publishing import DATASET_BODY, PUBLISHER

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
# What a user passes too: the export files' media types are binary downloads to the generator.
GENERATOR_CONFIG = PROJECT_ROOT / "openapi" / "generator-config.yaml"


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    if not GENERATOR.exists() and shutil.which("openapi-python-client") is None:
        pytest.fail("openapi-python-client is not installed: `pip install -e '.[test]'`")
    root = tmp_path_factory.mktemp("generated")
    command = str(GENERATOR) if GENERATOR.exists() else "openapi-python-client"
    # The generator formats its output with ruff, found on PATH (the test environment's).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    generation = subprocess.run(
        [
            command,
            "generate",
            "--path",
            str(OPENAPI_PATH),
            "--config",
            str(GENERATOR_CONFIG),
            "--meta",
            "none",
            "--fail-on-warning",
            "--output-path",
            str(root / "efdb_generated_client"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    # --fail-on-warning: any part of the document the generator cannot turn into code fails.
    assert generation.returncode == 0, generation.stdout + generation.stderr
    sys.path.insert(0, str(root))
    names = [
        "client",
        "models",
        "api.factors.search_factors_v1_factors_get",
        "api.factors.get_factor_v1_factors_publisher_dataset_factor_code_get",
        "api.factors.resolve_v1_factors_resolve_post",
        "api.datasets.list_datasets_v1_datasets_get",
        "api.datasets.create_dataset_v1_datasets_post",
        "api.datasets.get_dataset_v1_datasets_publisher_dataset_get",
        "api.exports.version_parquet_v1_datasets_publisher_dataset_versions_version_export_parquet_get",
    ]
    try:
        yield {n: importlib.import_module(f"efdb_generated_client.{n}") for n in names}
    finally:
        sys.path.remove(str(root))


def _client(generated: dict[str, ModuleType], http: TestClient, token: str | None = None) -> Any:
    module = generated["client"]
    client = (
        module.AuthenticatedClient(base_url="http://testserver", token=token)
        if token
        else module.Client(base_url="http://testserver")
    )
    # TestClient is an httpx.Client bound to the app: the generated code talks to it as-is.
    # A client handed in this way is used unchanged, so the token goes onto it here.
    if token:
        http.headers[client.auth_header_name] = f"{client.prefix} {token}"
    return client.set_httpx_client(http)


@pytest.mark.usefixtures("seeded")
def test_search_and_lookup_parse_into_the_generated_models(
    client: TestClient, generated: dict[str, ModuleType]
) -> None:
    api = _client(generated, client)
    page = generated["api.factors.search_factors_v1_factors_get"].sync(
        client=api, region="CN", activity_id="electricity-grid-mix"
    )
    assert {f.reference_year for f in page.items} == {2021, 2022, 2023}
    assert all(f.license_id and f.attribution for f in page.items)
    factor = generated["api.factors.get_factor_v1_factors_publisher_dataset_factor_code_get"].sync(
        client=api,
        publisher="mee-cn",
        dataset="cn-electricity-co2",
        factor_code="national-average-2022",
        version="1.0.0",
    )
    assert (factor.co2e, factor.unit, factor.version) == (0.5366, "kWh", "1.0.0")
    datasets = generated["api.datasets.list_datasets_v1_datasets_get"].sync(client=api)
    assert "mee-cn/cn-electricity-co2" in {d.id for d in datasets.items}


@pytest.mark.usefixtures("seeded")
def test_resolve_through_the_generated_client(
    client: TestClient, generated: dict[str, ModuleType]
) -> None:
    models = generated["models"]
    body = models.ResolveRequest(
        items=[
            models.ResolveItem(
                activity_id="electricity-grid-mix", region="CN", year=2023, unit="MWh"
            ),
            models.ResolveItem(activity_id="no-such-activity", region="CN", year=2023),
        ]
    )
    answer = generated["api.factors.resolve_v1_factors_resolve_post"].sync(
        client=_client(generated, client), body=body
    )
    first, second = answer.items
    assert first.to_dict()["factor"]["factor_code"] == "national-average-2023"
    assert "error" in second.to_dict()


def test_publishers_write_through_the_generated_client(
    client: TestClient, tokens: TokenKit, generated: dict[str, ModuleType]
) -> None:
    token = tokens.writer(PUBLISHER)["Authorization"].removeprefix("Bearer ")
    body = generated["models"].DatasetCreate.from_dict(DATASET_BODY)
    created = generated["api.datasets.create_dataset_v1_datasets_post"].sync_detailed(
        client=_client(generated, client, token), body=body
    )
    assert created.status_code == 201
    assert created.parsed.id == f"{PUBLISHER}/steel-products"


@pytest.mark.usefixtures("seeded")
def test_errors_reach_the_caller_as_problem_details(
    client: TestClient, generated: dict[str, ModuleType]
) -> None:
    api = _client(generated, client)
    search = generated["api.factors.search_factors_v1_factors_get"]
    refused = search.sync_detailed(client=api, limit=5000)
    assert refused.status_code == 422
    problem = refused.parsed
    assert isinstance(problem, generated["models"].Problem)
    assert problem.status == 422
    assert problem.errors
    assert problem.errors[0].loc == ["query", "limit"]
    missing = generated["api.datasets.get_dataset_v1_datasets_publisher_dataset_get"].sync_detailed(
        "mee-cn", "no-such-dataset", client=api
    )
    assert missing.status_code == 404
    assert isinstance(missing.parsed, generated["models"].Problem)
    assert "no-such-dataset" in missing.parsed.detail


@pytest.mark.usefixtures("seeded")
def test_a_parquet_export_downloads_as_bytes_through_the_generated_client(
    client: TestClient, generated: dict[str, ModuleType]
) -> None:
    download = generated[
        "api.exports.version_parquet_v1_datasets_publisher_dataset_versions_version_export_parquet_get"
    ].sync("mee-cn", "cn-electricity-co2", "1.0.0", client=_client(generated, client))
    table = pq.read_table(io.BytesIO(download.payload.read()))
    assert table.num_rows == 3
    assert set(table.column("factor_code").to_pylist()) == {
        "national-average-2021",
        "national-average-2022",
        "national-average-2023",
    }
