"""Who is calling: a `Principal` behind a verified token, and the `Viewer` read queries use."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Viewer:
    client_id: str | None = None
    publisher: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def can_read_registered(self) -> bool:
        return "factors:read" in self.scopes or "admin" in self.scopes


ANONYMOUS = Viewer()


@dataclass(frozen=True)
class Principal:
    """The client behind a verified bearer token, with the scopes it holds now."""

    client_id: str
    publisher: str | None
    scopes: frozenset[str]
    # The issuer, when it is a configured external one (whose tokens never carry a publisher).
    external_issuer: str | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def as_viewer(self) -> Viewer:
        return Viewer(client_id=self.client_id, publisher=self.publisher, scopes=self.scopes)
