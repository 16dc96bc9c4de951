"""Who is calling: a `Principal` behind a verified token, and the `Viewer` read queries use."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Viewer:
    client_id: str | None = None
    publisher: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    # Ids of the registered datasets this client was granted (`efdb grant add`).
    granted: frozenset[int] = field(default_factory=frozenset)

    @property
    def reads_every_dataset(self) -> bool:
        """National roles (reviewers, administrators) read every registered dataset."""
        return bool(self.scopes & NATIONAL_READERS)

    def may_read(self, *, access: str, publisher: str, dataset_id: int) -> bool:
        """Whether this reader sees the dataset at all (one that it may not is a 404).

        Public: everyone. Registered: national roles, the publisher's own clients, and clients
        holding `factors:read` and a grant for this dataset. Every read path decides with this
        or with its SQL twin, `app.datasets.access.readable`.
        """
        if access == "public" or self.reads_every_dataset:
            return True
        if self.publisher is not None and self.publisher == publisher:
            return bool(self.scopes & OWN_READERS)
        return "factors:read" in self.scopes and dataset_id in self.granted


# Scopes that read every registered dataset, and those that read the own publisher's ones.
NATIONAL_READERS = frozenset({"datasets:review", "admin"})
OWN_READERS = frozenset({"factors:read", "datasets:write"})


ANONYMOUS = Viewer()


@dataclass(frozen=True)
class Principal:
    """The client behind a verified bearer token, with the scopes it holds now."""

    client_id: str
    publisher: str | None
    scopes: frozenset[str]
    # The issuer, when it is a configured external one (whose tokens never carry a publisher).
    external_issuer: str | None = None
    granted: frozenset[int] = field(default_factory=frozenset)

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def as_viewer(self) -> Viewer:
        return Viewer(
            client_id=self.client_id,
            publisher=self.publisher,
            scopes=self.scopes,
            granted=self.granted,
        )
