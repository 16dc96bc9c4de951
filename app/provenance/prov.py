"""A factor's provenance chain as W3C PROV-JSON (https://www.w3.org/submissions/prov-json/).

The graph, for factor F in dataset version V:

- entities: F (its value is `prov:value`), V (a collection that `hadMember` F), the cited
  source document S, the uploaded file U (named by its sha256), and F in the release before V
  when there was one (`wasRevisionOf`, i.e. `wasDerivedFrom` typed `prov:Revision`);
- activities: the upload of U, the submission, the publication of V, and its withdrawal if
  any, each with its time and the hash of the audit event that recorded it;
- agents: the publisher (an organisation) and the OAuth2 clients that uploaded, submitted,
  published and withdrew (software agents); a client of a publisher `actedOnBehalfOf` it
  (a national reviewer's client belongs to no publisher);
- relations: `used` (upload used U), `wasGeneratedBy` (F by the upload, V by the
  publication), `wasDerivedFrom` (F from U with its row number, F from S with its locator),
  `wasAssociatedWith` (each activity with its client, in a role), `wasAttributedTo` (F and V
  to the publisher), `wasInformedBy` (submit after upload, publish after submit),
  `wasInvalidatedBy` (F and V by a withdrawal).

Identifiers live in the `efdb` namespace, the service's public `/v1/` URL, so that
`efdb:datasets/{p}/{d}/versions/{v}` expands to that version's API address.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

PROV_PREFIXES = {
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "prov": "http://www.w3.org/ns/prov#",
    "dcterms": "http://purl.org/dc/terms/",
}
_AUDIT_ACTIVITY = {
    "version.uploaded": "upload",
    "version.submitted": "submit",
    "version.published": "publish",
    "version.withdrawn": "withdraw",
}


def _qname(name: str) -> dict[str, str]:
    return {"$": name, "type": "prov:QUALIFIED_NAME"}


def _time(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else value


def _double(value: float) -> dict[str, str]:
    return {"$": repr(float(value)), "type": "xsd:double"}


def _attributes(**values: Any) -> dict[str, Any]:
    """PROV attributes without the missing ones (PROV has no null)."""
    return {name.replace("__", ":"): v for name, v in values.items() if v is not None}


class _Graph:
    def __init__(self, namespace: str) -> None:
        self.doc: dict[str, Any] = {"prefix": {"efdb": namespace, **PROV_PREFIXES}}
        self._counts: dict[str, int] = {}

    def node(self, kind: str, identifier: str, attributes: Mapping[str, Any]) -> str:
        self.doc.setdefault(kind, {})[identifier] = dict(attributes)
        return identifier

    def relation(self, kind: str, **attributes: Any) -> None:
        self._counts[kind] = self._counts.get(kind, 0) + 1
        key = f"_:{kind}{self._counts[kind]}"
        self.doc.setdefault(kind, {})[key] = _attributes(**attributes)


def prov_document(chain: Mapping[str, Any], *, namespace: str) -> dict[str, Any]:
    """PROV-JSON for the chain `factor_provenance` returns."""
    graph = _Graph(namespace)
    release = chain["dataset_version"]
    factor = chain["factor"]
    upload = chain["upload"]
    source = chain["source"]
    dataset_path = f"datasets/{release['dataset']}/versions/{release['version']}"
    audit = {
        _AUDIT_ACTIVITY[event["action"]]: event["hash"]
        for event in chain["audit_events"]
        if event["action"] in _AUDIT_ACTIVITY
    }

    organisation = graph.node(
        "agent",
        f"efdb:publishers/{chain['publisher']}",
        _attributes(prov__type=_qname("prov:Organization"), prov__label=chain["publisher"]),
    )

    actors = {actor["id"]: actor for actor in chain["actors"]}
    delegated: set[str] = set()

    def client(client_id: str | None) -> str | None:
        if client_id is None:
            return None
        identifier = graph.node(
            "agent",
            f"efdb:clients/{client_id}",
            _attributes(prov__type=_qname("prov:SoftwareAgent"), efdb__client_id=client_id),
        )
        on_behalf_of = actors.get(client_id, {}).get("publisher")
        if on_behalf_of is not None and identifier not in delegated:
            delegated.add(identifier)
            responsible = graph.node(
                "agent",
                f"efdb:publishers/{on_behalf_of}",
                _attributes(prov__type=_qname("prov:Organization"), prov__label=on_behalf_of),
            )
            graph.relation(
                "actedOnBehalfOf", prov__delegate=identifier, prov__responsible=responsible
            )
        return identifier

    factor_id = graph.node(
        "entity",
        f"efdb:factors/{chain['id']}",
        _attributes(
            prov__type=_qname("efdb:EmissionFactor"),
            prov__label=chain["id"],
            prov__value=_double(factor["co2e"]),
            efdb__unit=factor["unit"],
            efdb__activity_id=factor["activity_id"],
            efdb__region=factor["region"],
            efdb__reference_year=factor["reference_year"],
            efdb__gwp_set=factor["gwp_set"],
            efdb__boundary=factor["boundary"],
            efdb__uid=factor["uid"],
            efdb__license_id=chain["license_id"],
            efdb__attribution=chain["attribution"],
        ),
    )
    version_id = graph.node(
        "entity",
        f"efdb:{dataset_path}",
        _attributes(
            prov__type=[_qname("efdb:DatasetVersion"), _qname("prov:Collection")],
            prov__label=f"{release['dataset']} {release['version']}",
            efdb__content_sha256=release["content_sha256"],
            efdb__status=release["status"],
            efdb__withdrawn_reason=release["withdrawn_reason"],
            efdb__license_id=chain["license_id"],
            efdb__license_url=chain["license_url"],
        ),
    )
    source_id = graph.node(
        "entity",
        f"efdb:sources/{source['id']}",
        _attributes(
            prov__type=_qname("efdb:SourceDocument"),
            dcterms__title=source["title"],
            dcterms__publisher=source["publisher"],
            dcterms__date=str(source["year"]) if source["year"] is not None else None,
            dcterms__identifier=source["doi"],
            prov__location=source["url"],
        ),
    )
    graph.relation("hadMember", prov__collection=version_id, prov__entity=factor_id)
    graph.relation(
        "wasDerivedFrom",
        prov__generatedEntity=factor_id,
        prov__usedEntity=source_id,
        prov__type=_qname("prov:PrimarySource"),
        efdb__locator=source["locator"],
    )
    for entity in (factor_id, version_id):
        graph.relation("wasAttributedTo", prov__entity=entity, prov__agent=organisation)

    def activity(name: str, at: datetime | str | None, agent: str | None, role: str) -> str:
        identifier = graph.node(
            "activity",
            f"efdb:{dataset_path}/{name}",
            _attributes(
                prov__startTime=_time(at),
                prov__endTime=_time(at),
                prov__type=_qname(f"efdb:{name.capitalize()}"),
                efdb__audit_event_hash=audit.get(name),
            ),
        )
        if agent is not None:
            graph.relation(
                "wasAssociatedWith", prov__activity=identifier, prov__agent=agent, prov__role=role
            )
        return identifier

    uploader = client(upload["uploaded_by"])
    uploading = activity("upload", upload["uploaded_at"], uploader, "uploader")
    graph.relation(
        "wasGeneratedBy",
        prov__entity=factor_id,
        prov__activity=uploading,
        prov__time=_time(upload["uploaded_at"]),
    )
    if upload["file_sha256"] is not None:
        file_id = graph.node(
            "entity",
            f"efdb:uploads/{upload['file_sha256']}",
            _attributes(
                prov__type=_qname("efdb:UploadFile"),
                efdb__file_name=upload["file_name"],
                efdb__sha256=upload["file_sha256"],
                efdb__format=upload["format"],
            ),
        )
        graph.relation(
            "used",
            prov__activity=uploading,
            prov__entity=file_id,
            prov__time=_time(upload["uploaded_at"]),
        )
        graph.relation(
            "wasDerivedFrom",
            prov__generatedEntity=factor_id,
            prov__usedEntity=file_id,
            prov__activity=uploading,
            efdb__row_number=upload["row_number"],
        )

    submitting = activity(
        "submit", release["submitted_at"], client(release["submitted_by"]), "submitter"
    )
    graph.relation("wasInformedBy", prov__informed=submitting, prov__informant=uploading)
    publishing = activity(
        "publish", release["published_at"], client(release["published_by"]), "reviewer"
    )
    graph.relation("wasInformedBy", prov__informed=publishing, prov__informant=submitting)
    graph.relation(
        "wasGeneratedBy",
        prov__entity=version_id,
        prov__activity=publishing,
        prov__time=_time(release["published_at"]),
    )
    if release["withdrawn_at"] is not None:
        withdrawing = activity(
            "withdraw", release["withdrawn_at"], client(release["withdrawn_by"]), "reviewer"
        )
        for entity in (version_id, factor_id):
            graph.relation(
                "wasInvalidatedBy",
                prov__entity=entity,
                prov__activity=withdrawing,
                prov__time=_time(release["withdrawn_at"]),
            )

    older = [h for h in chain["history"] if _semver(h["version"]) < _semver(release["version"])]
    if older:
        previous = older[0]  # history is newest first
        previous_id = graph.node(
            "entity",
            f"efdb:factors/{release['dataset']}/{factor['factor_code']}@{previous['version']}",
            _attributes(
                prov__type=_qname("efdb:EmissionFactor"),
                prov__value=_double(previous["co2e"]),
                efdb__unit=previous["unit"],
                efdb__version_status=previous["version_status"],
            ),
        )
        graph.relation(
            "wasDerivedFrom",
            prov__generatedEntity=factor_id,
            prov__usedEntity=previous_id,
            prov__type=_qname("prov:Revision"),
        )
    return graph.doc


def _semver(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
