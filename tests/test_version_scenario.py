"""Three releases of one dataset, through the API, on a controlled clock.

A synthetic registered dataset (every value here is a test fixture, not a real factor):

- 1.0.0, published 2024-01-20: factors A, B and C;
- 1.1.0, published 2024-06-10: B's value corrected;
- 2.0.0, published 2025-02-10: C removed;
- 2.0.0 withdrawn on 2025-03-01 (1.1.0 answers "latest" again).

Then, from the API alone: what changed (diff), the history of a factor, the answer at several
dates (`as_of`), where a number comes from and who published it (provenance, JSON and W3C
PROV-JSON read by the `prov` package), the licence on every factor response, and who may see
any of it (a registered dataset: anonymous 404, `factors:read` with a grant 200).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prov.model import (
    ProvAssociation,
    ProvAttribution,
    ProvDelegation,
    ProvDerivation,
    ProvDocument,
    ProvGeneration,
    ProvInvalidation,
    ProvUsage,
)
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.core.db import make_sessionmaker
from app.core.http_cache import json_bytes
from app.core.principal import ANONYMOUS
from app.factors.schemas import UPLOADABLE_FIELDS
from app.provenance.schemas import ProvenanceChain, ProvJsonDocument
from app.versioning.diff import apply_diff, stream_diff_json, version_diff
from app.versioning.schemas import FactorHistory, VersionDiff
from tests.auth_fixtures import TokenKit, decode_unverified
from tests.factories import create_dataset, create_publisher, create_version, factor_fields
from tests.test_publishing import publish
from tests.upload_files import csv_bytes

PUBLISHER, DATASET = "synthetic-scenario", "synthetic-grid"
DATASETS = f"/v1/datasets/{PUBLISHER}/{DATASET}"
VERSIONS = f"{DATASETS}/versions"
FACTORS = f"/v1/factors/{PUBLISHER}/{DATASET}"
LICENSE = {
    "license_id": "LicenseRef-synthetic-test",
    "license_url": "https://example.org/synthetic-test-licence",
    "attribution": "Synthetic scenario data from the efdb test suite; not real factors.",
}
DATASET_BODY: dict[str, Any] = {
    "slug": DATASET,
    "title_zh": "合成情景电网因子",
    "title_en": "Synthetic scenario grid factors",
    "description": "Synthetic test dataset (not real emission factors).",
    "access": "registered",
    "redistribution": False,
    "commercial_use": False,
    **LICENSE,
}
WITHDRAWAL = "synthetic: 2.0.0 dropped C by mistake"


def row(code: str, co2e: float) -> dict[str, Any]:
    return {
        "factor_code": code,
        "activity_id": "synthetic-scenario-electricity",
        "name_zh": f"合成情景因子 {code}",
        "name_en": f"Synthetic scenario factor {code}",
        "region": "CN",
        "reference_year": 2023,
        "unit": "kWh",
        "co2e": co2e,
        "boundary": "combustion",
        "source_title": "Synthetic scenario fixture (not a real factor)",
        "source_publisher": "efdb test suite",
        "source_year": 2024,
        "source_locator": f"Synthetic table 1, line {code}",
        "notes": "Synthetic test fixture: not a real emission factor.",
    }


FILES = {
    "1.0.0": csv_bytes([row("A", 0.5), row("B", 0.6), row("C", 0.7)]),
    "1.1.0": csv_bytes([row("A", 0.5), row("B", 0.65), row("C", 0.7)]),
    "2.0.0": csv_bytes([row("A", 0.5), row("B", 0.65)]),
}


class Clock:
    """The app's clock (`app.state.clock`), moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: str) -> datetime:
        self.now = datetime.fromisoformat(moment).replace(tzinfo=UTC)
        return self.now


@pytest.fixture
def clock(app: FastAPI) -> Iterator[Clock]:
    app.state.clock = Clock()
    yield app.state.clock
    del app.state.clock


def client_id(headers: dict[str, str]) -> str:
    _, claims = decode_unverified(headers["Authorization"].removeprefix("Bearer "))
    return str(claims.get("client_id") or claims["sub"])


def at(moment: str) -> str:
    """An ISO timestamp as the API writes it."""
    return datetime.fromisoformat(moment).replace(tzinfo=UTC).isoformat()


@pytest.fixture
def scenario(client: TestClient, tokens: TokenKit, clock: Clock) -> dict[str, Any]:
    writer, reviewer = tokens.writer(PUBLISHER), tokens.reviewer()
    clock.set("2024-01-02T09:00")
    created = client.post("/v1/datasets", json=DATASET_BODY, headers=writer)
    assert created.status_code == 201, created.text
    reports = {}
    for version, (uploaded, submitted, published) in {
        "1.0.0": ("2024-01-15T09:00", "2024-01-16T09:00", "2024-01-20T10:00"),
        "1.1.0": ("2024-06-03T09:00", "2024-06-04T09:00", "2024-06-10T10:00"),
        "2.0.0": ("2025-02-01T09:00", "2025-02-03T09:00", "2025-02-10T10:00"),
    }.items():
        clock.set(uploaded)
        if version == "2.0.0":
            reports["1.2.0"] = _removal_as_a_minor_release(client, writer)
        response = client.post(
            VERSIONS,
            headers=writer,
            data={"version": version, "release_notes": f"synthetic release {version}"},
            files={"file": (f"grid-{version}.csv", FILES[version], "text/csv")},
        )
        assert response.status_code == 201, response.text
        reports[version] = response.json()["report"]
        clock.set(submitted)
        assert client.post(f"{VERSIONS}/{version}/submit", headers=writer).status_code == 200
        clock.set(published)
        response = publish(client, reviewer, version, versions=VERSIONS)
        assert response.status_code == 200, response.text
        assert datetime.fromisoformat(response.json()["published_at"]) == clock.now
    clock.set("2025-03-01T08:00")
    response = client.post(
        f"{VERSIONS}/2.0.0/withdraw", headers=reviewer, json={"reason": WITHDRAWAL}
    )
    assert response.status_code == 200, response.text
    reader = tokens.reader(f"{PUBLISHER}/{DATASET}")  # factors:read, granted this dataset
    return {"writer": writer, "reviewer": reviewer, "reader": reader, "reports": reports}


def _removal_as_a_minor_release(client: TestClient, writer: dict[str, str]) -> str:
    """Upload 2.0.0's file numbered 1.2.0: the report warns (C removed calls for MAJOR)."""
    response = client.post(
        VERSIONS,
        headers=writer,
        data={"version": "1.2.0"},
        files={"file": ("grid-1.2.0.csv", FILES["2.0.0"], "text/csv")},
    )
    assert response.status_code == 201, response.text
    [warning] = [
        w for w in response.json()["report"]["warnings"] if w["code"] == "version_bump_too_small"
    ]
    assert client.delete(f"{VERSIONS}/1.2.0", headers=writer).status_code == 204
    return str(warning["detail"])


def get(client: TestClient, scenario: dict[str, Any], path: str, **params: Any) -> Any:
    response = client.get(path, params=params, headers=scenario["reader"])
    assert response.status_code == 200, (path, params, response.text)
    return response.json()


def uploadable(factor: dict[str, Any]) -> dict[str, Any]:
    return {name: factor.get(name) for name in UPLOADABLE_FIELDS}


def test_the_version_check_at_upload_follows_the_diff(scenario: dict[str, Any]) -> None:
    # Removing C is a MAJOR change and 2.0.0 says so: no warning. A value fix as a MINOR is
    # more than enough.
    for version in ("1.1.0", "2.0.0"):
        codes = [w["code"] for w in scenario["reports"][version]["warnings"]]
        assert "version_bump_too_small" not in codes, (version, codes)
    # The same removal numbered 1.2.0 was warned about, from the same diff.
    assert scenario["reports"]["1.2.0"] == (
        "against 1.1.0: 0 added, 1 removed, 0 changed (0 in unit or activity) calls for a "
        "MAJOR release, not MINOR"
    )


def test_diff_between_each_pair_of_releases(client: TestClient, scenario: dict[str, Any]) -> None:
    correction = get(client, scenario, f"{VERSIONS}/1.1.0/diff", **{"from": "1.0.0"})
    assert correction["summary"] == {"added": 0, "removed": 0, "changed": 1}
    assert correction["changed"] == [
        {"factor_code": "B", "fields": {"co2e": {"before": 0.6, "after": 0.65}}}
    ]
    removal = get(client, scenario, f"{VERSIONS}/2.0.0/diff", **{"from": "1.1.0"})
    assert removal["summary"] == {"added": 0, "removed": 1, "changed": 0}
    assert removal["removed"] == ["C"]
    back = get(client, scenario, f"{VERSIONS}/1.0.0/diff", **{"from": "2.0.0"})
    assert (back["added"], back["removed"]) == (["C"], [])
    assert back["added_factors"][0]["co2e"] == 0.7

    # Applying a diff to the old release's factors gives the new release's, over the API.
    def factors(version: str) -> list[dict[str, Any]]:
        items = get(client, scenario, f"{VERSIONS}/{version}/factors", limit=1000)["items"]
        return sorted((uploadable(f) for f in items), key=lambda f: f["factor_code"])

    for old, new in [
        ("1.0.0", "1.1.0"),
        ("1.1.0", "2.0.0"),
        ("1.0.0", "2.0.0"),
        ("2.0.0", "1.0.0"),
    ]:
        diff = get(client, scenario, f"{VERSIONS}/{new}/diff", **{"from": old})
        assert apply_diff(factors(old), diff) == factors(new), (old, new)


def test_history_of_a_corrected_and_of_a_removed_factor(
    client: TestClient, scenario: dict[str, Any]
) -> None:
    history = get(client, scenario, f"{FACTORS}/B/history")["items"]
    assert [
        (h["version"], h["version_status"], h["withdrawn"], h["co2e"], h["published_at"])
        for h in history
    ] == [
        ("2.0.0", "withdrawn", True, 0.65, at("2025-02-10T10:00")),
        ("1.1.0", "published", False, 0.65, at("2024-06-10T10:00")),
        ("1.0.0", "deprecated", False, 0.6, at("2024-01-20T10:00")),
    ]
    assert (history[0]["withdrawn_reason"], history[0]["withdrawn_at"]) == (
        WITHDRAWAL,
        at("2025-03-01T08:00"),
    )
    removed = get(client, scenario, f"{FACTORS}/C/history")["items"]
    assert [h["version"] for h in removed] == ["1.1.0", "1.0.0"]


# (as_of, version answering for B then, B's co2e then); None: nothing was published yet.
AS_OF = [
    ("2023-12-31", None, None),
    ("2024-01-19", None, None),
    ("2024-01-20", "1.0.0", 0.6),  # published that day: the day is answered up to its end
    ("2024-03-01", "1.0.0", 0.6),
    ("2024-12-31", "1.1.0", 0.65),  # "what was it in 2024": the value at the end of 2024
    ("2025-02-15", "2.0.0", 0.65),  # 2.0.0 current then: its withdrawal came later
    ("2025-03-01", "1.1.0", 0.65),  # withdrawn that day
    ("2026-01-01", "1.1.0", 0.65),
]


def test_as_of_answers_as_the_database_stood(client: TestClient, scenario: dict[str, Any]) -> None:
    for as_of, version, co2e in AS_OF:  # one scenario for every date: building it is the cost
        response = client.get(f"{FACTORS}/B", params={"as_of": as_of}, headers=scenario["reader"])
        found = client.get(
            "/v1/factors",
            params={"dataset": f"{PUBLISHER}/{DATASET}", "as_of": as_of},
            headers=scenario["reader"],
        ).json()["items"]
        if version is None:
            assert response.status_code == 404, (as_of, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert found == [], as_of
            continue
        assert response.status_code == 200, (as_of, response.text)
        factor = response.json()
        assert (factor["version"], factor["co2e"]) == (version, co2e), as_of
        assert {f["version"] for f in found} == {version}, as_of
        codes = sorted(f["factor_code"] for f in found)
        assert codes == (["A", "B"] if version == "2.0.0" else ["A", "B", "C"]), as_of


def test_resolve_follows_the_same_versions(client: TestClient, scenario: dict[str, Any]) -> None:
    line = {"activity_id": "synthetic-scenario-electricity", "region": "CN", "year": 2023}
    lines = [line, {**line, "as_of": "2024-03-01"}, {**line, "as_of": "2025-02-15"}]
    response = client.post("/v1/factors:resolve", json={"items": lines}, headers=scenario["reader"])
    assert response.status_code == 200, response.text
    answers = [item["factor"] for item in response.json()["items"]]
    # Which of A, B and C answers is the resolver's ranking; which release answers is as_of's.
    assert [f["version"] for f in answers] == ["1.1.0", "1.0.0", "2.0.0"]
    for factor in answers:
        assert {k: factor[k] for k in LICENSE} == LICENSE
    hidden = client.post("/v1/factors:resolve", json={"items": [line]}).json()["items"]
    assert hidden[0].get("factor") is None
    assert hidden[0]["error"]["code"]


def test_latest_never_resolves_to_the_withdrawn_release(
    client: TestClient, scenario: dict[str, Any]
) -> None:
    latest = get(client, scenario, f"{FACTORS}/B")
    assert (latest["version"], latest["version_status"], latest["withdrawn_reason"]) == (
        "1.1.0",
        "published",
        None,
    )
    assert get(client, scenario, f"{FACTORS}/C")["version"] == "1.1.0"
    assert get(client, scenario, DATASETS)["latest_version"] == "1.1.0"
    # By exact version it stays readable, flagged, with the reason.
    pinned = get(client, scenario, f"{FACTORS}/B", version="2.0.0")
    assert (pinned["version_status"], pinned["withdrawn_reason"], pinned["withdrawn_at"]) == (
        "withdrawn",
        WITHDRAWAL,
        at("2025-03-01T08:00"),
    )
    version = get(client, scenario, f"{VERSIONS}/2.0.0")
    assert (version["status"], version["withdrawn_reason"]) == ("withdrawn", WITHDRAWAL)


def test_provenance_answers_where_from_and_who(
    client: TestClient, scenario: dict[str, Any]
) -> None:
    chain = get(client, scenario, f"{FACTORS}/B/provenance")
    assert chain["id"] == f"{PUBLISHER}/{DATASET}/B@1.1.0"
    assert (chain["factor"]["co2e"], chain["factor"]["unit"]) == (0.65, "kWh")
    assert chain["source"]["title"] == "Synthetic scenario fixture (not a real factor)"
    assert chain["source"]["locator"] == "Synthetic table 1, line B"
    release = chain["dataset_version"]
    assert release["content_sha256"] == get(client, scenario, f"{VERSIONS}/1.1.0")["content_sha256"]
    writer, reviewer = client_id(scenario["writer"]), client_id(scenario["reviewer"])
    assert (release["submitted_by"], release["submitted_at"]) == (writer, at("2024-06-04T09:00"))
    assert (release["published_by"], release["published_at"]) == (reviewer, at("2024-06-10T10:00"))
    assert chain["upload"] == {
        "file_name": "grid-1.1.0.csv",
        "file_sha256": hashlib.sha256(FILES["1.1.0"]).hexdigest(),
        "format": "csv",
        "row_number": 3,  # B is the second data row; the header is row 1
        "uploaded_by": writer,
        "uploaded_at": at("2024-06-03T09:00"),
    }
    assert [(e["action"], e["actor"], e["occurred_at"]) for e in chain["audit_events"]] == [
        ("dataset.created", writer, at("2024-01-02T09:00")),
        ("version.uploaded", writer, at("2024-06-03T09:00")),
        ("version.submitted", writer, at("2024-06-04T09:00")),
        ("version.published", reviewer, at("2024-06-10T10:00")),
    ]
    assert [h["version"] for h in chain["history"]] == ["2.0.0", "1.1.0", "1.0.0"]
    assert {k: chain[k] for k in LICENSE} == LICENSE
    assert (chain["dataset_status"], chain["superseded_by"]) == ("active", None)
    actors = {actor["id"]: actor for actor in chain["actors"]}
    assert actors == {
        writer: {"id": writer, "client": True, "publisher": PUBLISHER},
        reviewer: {"id": reviewer, "client": True, "publisher": None},  # a national reviewer
    }


def _prov(client: TestClient, scenario: dict[str, Any], version: str) -> ProvDocument:
    response = client.get(
        f"{FACTORS}/B/provenance",
        params={"version": version, "format": "prov"},
        headers=scenario["reader"],
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return ProvDocument.deserialize(content=response.text, format="json")


def _relations(document: ProvDocument, kind: type) -> list[dict[str, Any]]:
    """Each relation of a kind as {local attribute name: value as text}."""
    return [
        {name.localpart: str(value) for name, value in record.attributes}
        for record in document.get_records(kind)
    ]


def test_provenance_as_w3c_prov_json(client: TestClient, scenario: dict[str, Any]) -> None:
    document = _prov(client, scenario, "2.0.0")
    ns = document.get_default_namespace() or next(
        n for n in document.get_registered_namespaces() if n.prefix == "efdb"
    )
    assert ns.uri.endswith("/v1/")
    factor = f"efdb:factors/{PUBLISHER}/{DATASET}/B@2.0.0"
    version = f"efdb:datasets/{PUBLISHER}/{DATASET}/versions/2.0.0"
    activity = f"efdb:datasets/{PUBLISHER}/{DATASET}/versions/2.0.0/"
    writer = f"efdb:clients/{client_id(scenario['writer'])}"
    reviewer = f"efdb:clients/{client_id(scenario['reviewer'])}"
    upload_file = f"efdb:uploads/{hashlib.sha256(FILES['2.0.0']).hexdigest()}"

    [entity] = [r for r in document.get_records() if str(r.identifier) == factor]
    values = {name.localpart: value for name, value in entity.attributes}
    assert float(values["value"]) == 0.65
    assert (values["unit"], values["license_id"]) == ("kWh", LICENSE["license_id"])

    generated = _relations(document, ProvGeneration)
    assert {
        "entity": factor,
        "activity": activity + "upload",
        "time": "2025-02-01 09:00:00+00:00",
    } in generated
    assert {
        "entity": version,
        "activity": activity + "publish",
        "time": "2025-02-10 10:00:00+00:00",
    } in generated
    assert {
        "activity": activity + "upload",
        "entity": upload_file,
        "time": "2025-02-01 09:00:00+00:00",
    } in _relations(document, ProvUsage)
    associations = _relations(document, ProvAssociation)
    for name, agent, role in [
        ("upload", writer, "uploader"),
        ("submit", writer, "submitter"),
        ("publish", reviewer, "reviewer"),
        ("withdraw", reviewer, "reviewer"),
    ]:
        assert {"activity": activity + name, "agent": agent, "role": role} in associations
    delegations = _relations(document, ProvDelegation)
    assert delegations == [{"delegate": writer, "responsible": f"efdb:publishers/{PUBLISHER}"}]
    attributed = _relations(document, ProvAttribution)
    assert {"entity": factor, "agent": f"efdb:publishers/{PUBLISHER}"} in attributed
    derivations = _relations(document, ProvDerivation)
    from_source = [d for d in derivations if d.get("type") == "prov:PrimarySource"]
    assert [d["locator"] for d in from_source] == ["Synthetic table 1, line B"]
    from_file = [d for d in derivations if d["usedEntity"] == upload_file]
    assert [(d["generatedEntity"], d["row_number"]) for d in from_file] == [(factor, "3")]
    revision = [d for d in derivations if d.get("type") == "prov:Revision"]
    assert [d["usedEntity"] for d in revision] == [f"efdb:factors/{PUBLISHER}/{DATASET}/B@1.1.0"]
    invalidated = {(d["entity"], d["time"]) for d in _relations(document, ProvInvalidation)}
    assert invalidated == {
        (factor, "2025-03-01 08:00:00+00:00"),
        (version, "2025-03-01 08:00:00+00:00"),
    }
    # Activities carry their times and the audit event that recorded them.
    activities = {
        str(r.identifier): {n.localpart: str(v) for n, v in r.attributes}
        for r in document.get_records()
        if r.get_type().localpart == "Activity"
    }
    assert activities[activity + "publish"]["startTime"] == "2025-02-10 10:00:00+00:00"
    assert len(activities[activity + "publish"]["audit_event_hash"]) == 64
    # The document round-trips through the library unchanged.
    again = ProvDocument.deserialize(content=document.serialize(format="json"), format="json")
    assert again == document


def test_every_factor_response_carries_the_licence(
    client: TestClient, scenario: dict[str, Any]
) -> None:
    answers = [
        get(client, scenario, f"{FACTORS}/A"),
        get(client, scenario, f"{FACTORS}/A", version="1.0.0"),
        get(client, scenario, f"{FACTORS}/A", as_of="2024-12-31"),
        *get(client, scenario, "/v1/factors", dataset=f"{PUBLISHER}/{DATASET}")["items"],
        *get(client, scenario, "/v1/factors", q="Synthetic scenario")["items"],
        *get(client, scenario, f"{VERSIONS}/2.0.0/factors")["items"],
    ]
    assert len(answers) == 3 + 3 + 3 + 2
    for factor in answers:
        assert {k: factor[k] for k in LICENSE} == LICENSE, factor["id"]
        assert (factor["dataset_status"], factor["superseded_by"]) == ("active", None)
    dataset = get(client, scenario, DATASETS)
    assert {k: dataset[k] for k in LICENSE} == LICENSE
    assert (dataset["redistribution"], dataset["commercial_use"]) == (False, False)


def test_a_registered_dataset_is_404_to_anonymous_callers(
    client: TestClient, tokens: TokenKit, scenario: dict[str, Any]
) -> None:
    paths: list[tuple[str, dict[str, str]]] = [
        (DATASETS, {}),
        (VERSIONS, {}),
        (f"{VERSIONS}/1.1.0", {}),
        (f"{VERSIONS}/1.1.0/factors", {}),
        (f"{VERSIONS}/1.1.0/diff", {"from": "1.0.0"}),
        (f"{FACTORS}/B", {}),
        (f"{FACTORS}/B", {"version": "2.0.0"}),
        (f"{FACTORS}/B", {"as_of": "2024-12-31"}),
        (f"{FACTORS}/B/history", {}),
        (f"{FACTORS}/B/provenance", {}),
        (f"{FACTORS}/B/provenance", {"format": "prov"}),
    ]
    # Another publisher's client holds factors:read but no grant: it reads as anonymous does.
    other_reader = tokens.writer("synthetic-other")
    for path, params in paths:
        hidden = client.get(path, params=params)
        assert hidden.status_code == 404, (path, params, hidden.status_code)
        assert hidden.headers["content-type"] == "application/problem+json"
        assert PUBLISHER not in json.dumps(hidden.json().get("errors", []))
        assert client.get(path, params=params, headers=scenario["reader"]).status_code == 200
        assert client.get(path, params=params, headers=other_reader).status_code == 404, path
    anonymous = client.get("/v1/factors", params={"q": "Synthetic scenario"}).json()
    assert anonymous["items"] == []
    listed = client.get("/v1/datasets").json()["items"]
    assert f"{PUBLISHER}/{DATASET}" not in [d["id"] for d in listed]


def test_unknown_provenance_format_is_refused(client: TestClient, scenario: dict[str, Any]) -> None:
    response = client.get(
        f"{FACTORS}/B/provenance", params={"format": "rdf"}, headers=scenario["reader"]
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_a_large_diff_is_streamed_in_chunks_and_says_what_the_in_memory_one_says(
    client: TestClient, session: Session, db: Engine
) -> None:
    """3000 synthetic factors: some corrected, some removed, some added."""
    publisher = create_publisher(session, slug="synthetic-large")
    dataset = create_dataset(session, publisher=publisher, slug="synthetic-large")
    codes = [f"synthetic-{i:05d}" for i in range(3000)]
    old = create_version(
        session,
        dataset=dataset,
        version="1.0.0",
        factors=[factor_fields(code, co2e=1.0 + i) for i, code in enumerate(codes)],
    )
    new = create_version(
        session,
        dataset=dataset,
        version="2.0.0",
        factors=[
            *(
                factor_fields(code, co2e=1.0 + i + (0.5 if i % 2 else 0.0))
                for i, code in enumerate(codes)
                if i >= 100  # the first 100 removed, every odd one corrected
            ),
            factor_fields("synthetic-new-1"),
            factor_fields("synthetic-new-2"),
        ],
    )
    session.commit()

    chunks = list(stream_diff_json(make_sessionmaker(db), old=old, new=new))
    assert len(chunks) > 1, "a diff this size is written in more than one piece"
    streamed = json.loads(b"".join(chunks))
    in_memory = json.loads(
        json_bytes(
            version_diff(
                session,
                viewer=ANONYMOUS,
                publisher="synthetic-large",
                dataset="synthetic-large",
                from_version="1.0.0",
                to_version="2.0.0",
            )
        )
    )
    assert streamed == in_memory
    assert streamed["summary"] == {"added": 2, "removed": 100, "changed": 1450}

    over_http = client.get(
        "/v1/datasets/synthetic-large/synthetic-large/versions/2.0.0/diff", params={"from": "1.0.0"}
    )
    assert over_http.status_code == 200
    assert over_http.json() == streamed
    assert over_http.headers["cache-control"] == "public, max-age=31536000, immutable"
    again = client.get(
        "/v1/datasets/synthetic-large/synthetic-large/versions/2.0.0/diff",
        params={"from": "1.0.0"},
        headers={"If-None-Match": over_http.headers["etag"]},
    )
    assert again.status_code == 304


def test_the_answers_are_the_documented_models(
    client: TestClient, scenario: dict[str, Any]
) -> None:
    """The diff (streamed), a factor's history and its provenance (cached as built) are not
    checked by FastAPI's response_model; here real answers, with a withdrawal, a correction
    and a removal in them, must validate against the models the OpenAPI document publishes
    (extra keys refused)."""
    for to, since in (("1.1.0", "1.0.0"), ("2.0.0", "1.1.0"), ("1.0.0", "2.0.0")):
        VersionDiff.model_validate(
            get(client, scenario, f"{VERSIONS}/{to}/diff", **{"from": since})
        )
    for code in ("A", "B", "C"):
        answer = get(client, scenario, f"{FACTORS}/{code}/history")
        history = FactorHistory.model_validate(answer)
        assert history.items
        for version in {entry.version for entry in history.items}:
            chain = get(client, scenario, f"{FACTORS}/{code}/provenance", version=version)
            assert ProvenanceChain.model_validate(chain).dataset_version.version == version
            prov = get(
                client, scenario, f"{FACTORS}/{code}/provenance", version=version, format="prov"
            )
            ProvJsonDocument.model_validate(prov)
            with pytest.raises(ValidationError):  # the union's two members never overlap
                ProvenanceChain.model_validate(prov)
