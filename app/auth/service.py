"""Administering who may publish: OAuth2 clients and their revocation.

Publishers belong to the catalog (`app/datasets/publishers.py` registers them); auth sits
below it, so a client's publisher is found through the `publisher` table's id, slug and
status columns, not the catalog's model. Every change appends an audit event in the caller's
transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, column, select, table
from sqlalchemy.orm import Session

from app.auth.hashing import PRODUCTION_COST, generate_client_id, generate_secret, hash_secret
from app.auth.models import Client, DatasetGrant
from app.auth.scopes import NATIONAL_SCOPES, PUBLISHER_SCOPES, Scope
from app.core.audit import append_event
from app.core.db import utcnow

# The catalog's publisher table, seen only by the columns a client needs.
_PUBLISHER = table(
    "publisher", column("id", Integer), column("slug", String), column("status", String)
)


class AdminError(Exception):
    """An administrative request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class IssuedClient:
    """A new client and its secret: the only time the secret exists outside the caller."""

    client_id: str
    client_secret: str
    scopes: list[str]
    publisher: str | None
    name: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scopes": self.scopes,
            "publisher": self.publisher,
            "name": self.name,
        }


def get_client(session: Session, client_id: str) -> Client | None:
    return session.execute(select(Client).where(Client.client_id == client_id)).scalar_one_or_none()


def _checked_scopes(scopes: Iterable[str], *, national: bool) -> list[str]:
    requested = list(dict.fromkeys(scopes))
    if not requested:
        raise AdminError("a client needs at least one scope")
    known = {scope.value for scope in Scope}
    unknown = [scope for scope in requested if scope not in known]
    if unknown:
        raise AdminError(
            f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    allowed = NATIONAL_SCOPES if national else PUBLISHER_SCOPES
    refused = [scope for scope in requested if scope not in allowed]
    if refused:
        kind = "a national (--admin) client" if national else "a publisher's client"
        raise AdminError(
            f"{kind} cannot have scope(s) {', '.join(refused)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    return sorted(requested)


def create_client(
    session: Session,
    *,
    publisher: str | None,
    scopes: Iterable[str],
    name: str | None = None,
    actor: str,
    secret_hash_cost: int = PRODUCTION_COST,
) -> IssuedClient:
    """A client of `publisher` (or, with None, a national client). Returns the secret once.

    `secret_hash_cost` is `Settings.secret_hash_cost` (lower only in a test configuration).
    """
    owner = None
    if publisher is not None:
        owner = session.execute(
            select(_PUBLISHER.c.id, _PUBLISHER.c.status).where(_PUBLISHER.c.slug == publisher)
        ).first()
        if owner is None:
            raise AdminError(f"no publisher {publisher!r}")
        if owner.status != "active":
            raise AdminError(f"publisher {publisher!r} is {owner.status}")
    checked = _checked_scopes(scopes, national=owner is None)
    secret = generate_secret()
    client = Client(
        client_id=generate_client_id(),
        secret_hash=hash_secret(secret, cost=secret_hash_cost),
        name=name,
        scopes=checked,
        publisher_id=owner.id if owner is not None else None,
    )
    session.add(client)
    session.flush()
    append_event(
        session,
        actor=actor,
        action="client.created",
        subject_type="client",
        subject_id=client.client_id,
        payload={"publisher": publisher, "scopes": checked, "name": name},
    )
    return IssuedClient(
        client_id=client.client_id,
        client_secret=secret,
        scopes=checked,
        publisher=publisher,
        name=name,
    )


def revoke_client(session: Session, *, client_id: str, actor: str) -> Client:
    """Revoke a client: its secret stops working and its tokens are refused at once."""
    client = session.execute(
        select(Client).where(Client.client_id == client_id).with_for_update()
    ).scalar_one_or_none()
    if client is None:
        raise AdminError(f"no client {client_id!r}")
    if client.revoked_at is not None:
        raise AdminError(
            f"client {client_id!r} was already revoked at {client.revoked_at:%Y-%m-%dT%H:%M:%SZ}"
        )
    client.revoked_at = utcnow()
    session.flush()
    append_event(
        session,
        actor=actor,
        action="client.revoked",
        subject_type="client",
        subject_id=client_id,
        payload={"revoked_at": client.revoked_at.isoformat()},
    )
    return client


@dataclass(frozen=True)
class ClientState:
    """What the token endpoint and the resource side need to know about a client."""

    client_id: str
    secret_hash: str
    scopes: frozenset[str]
    publisher: str | None
    revoked: bool
    publisher_suspended: bool

    @property
    def active(self) -> bool:
        return not self.revoked and not self.publisher_suspended


def client_state(session: Session, client_id: str) -> ClientState | None:
    """The client with its publisher's slug and whether it may act now (not revoked, publisher
    not suspended); None if there is no such client."""
    row = session.execute(
        select(Client, _PUBLISHER.c.slug, _PUBLISHER.c.status)
        .outerjoin(_PUBLISHER, _PUBLISHER.c.id == Client.publisher_id)
        .where(Client.client_id == client_id)
    ).first()
    if row is None:
        return None
    client, slug, status = row
    return ClientState(
        client_id=client.client_id,
        secret_hash=client.secret_hash,
        scopes=frozenset(client.scopes or ()),
        publisher=slug,
        revoked=client.revoked_at is not None,
        publisher_suspended=slug is not None and status != "active",
    )


def list_clients(
    session: Session, *, publisher: str | None = None, include_revoked: bool = False
) -> list[dict[str, object]]:
    """Clients as `efdb client list` prints them: who they act for, what they may do, whether
    they still may; never a secret or its hash."""
    query = (
        select(Client, _PUBLISHER.c.slug, _PUBLISHER.c.status)
        .outerjoin(_PUBLISHER, _PUBLISHER.c.id == Client.publisher_id)
        .order_by(Client.created_at, Client.id)
    )
    if publisher is not None:
        query = query.where(_PUBLISHER.c.slug == publisher)
    if not include_revoked:
        query = query.where(Client.revoked_at.is_(None))
    listed: list[dict[str, object]] = []
    for client, slug, status in session.execute(query):
        listed.append(
            {
                "client_id": client.client_id,
                "name": client.name,
                "scopes": sorted(client.scopes or ()),
                "publisher": slug,
                "publisher_suspended": slug is not None and status != "active",
                "created_at": client.created_at.isoformat(),
                "revoked_at": client.revoked_at.isoformat() if client.revoked_at else None,
                "locked_until": client.locked_until.isoformat() if client.locked_until else None,
            }
        )
    return listed


def granted_datasets(session: Session, client_id: str) -> frozenset[int]:
    """Ids of the registered datasets `client_id` was granted (read with every token)."""
    rows = session.execute(
        select(DatasetGrant.dataset_id).where(DatasetGrant.client_id == client_id)
    ).scalars()
    return frozenset(rows)
