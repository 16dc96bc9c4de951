"""JWS compact signing and checking with joserfc (ES256): no database, no settings, so that the
offline verifier (`efdb verify`) uses exactly this code with nothing but a JWKS.

The protected header carries `kid` and `iat` (when it was signed, Unix seconds): a key's
published period (`efdb:not_before` … `efdb:not_after` in the JWKS) is checked against `iat`,
so a statement signed by a retired key inside its period keeps verifying, and one dated
outside it does not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter

ALGORITHM = "ES256"
PURPOSE = "release"
PURPOSE_MEMBER = "efdb:purpose"
STATUS_MEMBER = "efdb:status"
NOT_BEFORE_MEMBER = "efdb:not_before"
NOT_AFTER_MEMBER = "efdb:not_after"
MEDIA_TYPE = "application/jose"

TYP_RELEASE = "efdb-release+json"
TYP_CHECKPOINT = "efdb-checkpoint+json"
TYP_MANIFEST = "efdb-snapshot-manifest+json"

_REGISTRY = JWSRegistry(
    header_registry={"iat": HeaderParameter("Signed at (Unix seconds)", "int", required=True)},
    algorithms=[ALGORITHM],
)


class SignatureProblem(Exception):
    """A JWS that does not verify against the given key set; the message says why."""


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(payload: bytes, *, key: ECKey, typ: str, signed_at: datetime) -> str:
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": typ, "iat": int(signed_at.timestamp())}
    return jws.serialize_compact(header, payload, key, registry=_REGISTRY)


def release_jwk(
    public: dict[str, Any], *, status: str, not_before: datetime, not_after: datetime | None
) -> dict[str, Any]:
    """A release key as published in the JWKS: its use, purpose, status and period."""
    jwk = {**public, "use": "sig", "alg": ALGORITHM, PURPOSE_MEMBER: PURPOSE, STATUS_MEMBER: status}
    jwk[NOT_BEFORE_MEMBER] = not_before.isoformat()
    if not_after is not None:
        jwk[NOT_AFTER_MEMBER] = not_after.isoformat()
    return jwk


@dataclass(frozen=True)
class Verified:
    payload: bytes
    kid: str
    typ: str | None
    signed_at: datetime
    key_status: str

    def json(self) -> Any:
        return json.loads(self.payload)


def _when(value: Any, member: str, kid: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise SignatureProblem(f"key {kid}: {member} {value!r} is not an ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def verify(token: str, jwks: dict[str, Any], *, typ: str | None = None) -> Verified:
    """Check a compact JWS against the release keys of `jwks`; raise SignatureProblem naming
    what failed: malformed, kid unknown, outside the key's period, bad signature, wrong type."""
    try:
        extracted = jws.extract_compact(token.strip().encode("ascii"))
        header = extracted.headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise SignatureProblem(f"not a JWS in compact form: {exc}") from exc
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM:
        raise SignatureProblem(f"alg {header.get('alg')!r} is not {ALGORITHM}")
    keys = [
        jwk
        for jwk in jwks.get("keys", [])
        if isinstance(jwk, dict) and jwk.get("kid") == kid and jwk.get(PURPOSE_MEMBER) == PURPOSE
    ]
    if not keys:
        raise SignatureProblem(f"kid {kid!r} unknown: no release signing key with it in the JWKS")
    jwk = keys[0]
    iat = header.get("iat")
    if not isinstance(iat, int):
        raise SignatureProblem("the protected header has no iat (signing time)")
    signed_at = datetime.fromtimestamp(iat, UTC)
    public = {k: v for k, v in jwk.items() if not k.startswith("efdb:")}
    try:
        verified = jws.deserialize_compact(
            token.strip(), ECKey.import_key(public), registry=_REGISTRY
        )
    except JoseError as exc:
        raise SignatureProblem(f"signature does not verify with key {kid}: {exc.error}") from exc
    # The period is checked on an authentic header only (iat is covered by the signature).
    if NOT_BEFORE_MEMBER in jwk:
        not_before = _when(jwk[NOT_BEFORE_MEMBER], NOT_BEFORE_MEMBER, str(kid))
        # Unix seconds in iat: a statement signed in the key's first second is inside.
        if signed_at < not_before.replace(microsecond=0):
            raise SignatureProblem(
                f"key {kid} signed at {signed_at.isoformat()}, before its period "
                f"(from {not_before.isoformat()})"
            )
    if NOT_AFTER_MEMBER in jwk:
        not_after = _when(jwk[NOT_AFTER_MEMBER], NOT_AFTER_MEMBER, str(kid))
        if signed_at > not_after:
            raise SignatureProblem(
                f"key {kid} is retired: signed at {signed_at.isoformat()}, after its period "
                f"ended ({not_after.isoformat()})"
            )
    if typ is not None and header.get("typ") != typ:
        raise SignatureProblem(f"typ {header.get('typ')!r} is not {typ!r}")
    return Verified(
        payload=verified.payload,
        kid=str(kid),
        typ=header.get("typ"),
        signed_at=signed_at,
        key_status=str(jwk.get(STATUS_MEMBER, "active")),
    )
