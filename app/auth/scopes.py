"""OAuth2 scopes: what a token may do. Nothing implies anything else."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    FACTORS_READ = "factors:read"
    DATASETS_WRITE = "datasets:write"
    DATASETS_REVIEW = "datasets:review"
    ADMIN = "admin"
    WEBHOOKS_MANAGE = "webhooks:manage"


SCOPE_DESCRIPTIONS: dict[str, str] = {
    Scope.FACTORS_READ: "Read the `registered` datasets the client was granted.",
    Scope.DATASETS_WRITE: "Create datasets and upload and submit versions for the own publisher.",
    Scope.DATASETS_REVIEW: "Publish, reject and withdraw versions (national reviewer).",
    Scope.ADMIN: "Create snapshots and read the audit log (national administrator).",
    Scope.WEBHOOKS_MANAGE: "Register, list, rotate and delete the client's own webhooks.",
}

# A publisher's client reads and writes for its publisher; reviewing and administering belong to
# national clients (no publisher), so that no publisher can publish or withdraw on its own.
PUBLISHER_SCOPES = frozenset({Scope.FACTORS_READ, Scope.DATASETS_WRITE, Scope.WEBHOOKS_MANAGE})
# `datasets:write` needs a publisher to write for, so national clients do not get it.
NATIONAL_SCOPES = frozenset(
    {Scope.FACTORS_READ, Scope.DATASETS_REVIEW, Scope.ADMIN, Scope.WEBHOOKS_MANAGE}
)


def parse_scopes(value: str | None) -> frozenset[str]:
    """A space-separated scope string (RFC 6749 §3.3) as a set; empty or None is empty."""
    return frozenset(value.split()) if value else frozenset()


def format_scopes(scopes: frozenset[str] | set[str] | list[str]) -> str:
    return " ".join(sorted(scopes))
