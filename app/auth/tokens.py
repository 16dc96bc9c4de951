"""Verifying access tokens: ours (RFC 9068, RS256) and those of configured external issuers.

Each issuer's algorithms are pinned before any signature is checked: joserfc's `jwt.decode` is
given exactly the allowed list, so `alg: none`, HS256 signed with our public key (algorithm
confusion) and any other algorithm are refused whatever the header says. The module-level
`authlib.jose.jwt` (deprecated in Authlib 1.9 in favour of joserfc) would accept every
registered algorithm, which is why it is not used here.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import KeySet

from app.auth.keys import ALGORITHM, SigningKeys
from app.auth.scopes import parse_scopes
from app.core.config import Settings, TrustedIssuer

# Clock skew tolerated on exp, nbf and iat.
LEEWAY_SECONDS = 30
# RFC 9068 §4: `typ` is `at+jwt`, or the full media type `application/at+jwt`.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# Remote JWKS: refreshed after this long, or sooner (at most this often) on an unknown `kid`.
JWKS_TTL_SECONDS = 600
JWKS_MIN_REFRESH_SECONDS = 30

log = logging.getLogger("efdb.auth")


class TokenRejected(Exception):
    """The bearer token is not acceptable; the message says why, for the client's developer."""


@dataclass(frozen=True)
class VerifiedToken:
    issuer: str
    client_id: str
    subject: str
    scopes: frozenset[str]
    publisher: str | None
    external: bool
    claims: Mapping[str, Any] = field(repr=False)


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, unverified: only to choose the issuer's keys."""
    if token.count(".") != 2:
        raise TokenRejected("The access token is not a signed JWT.")
    try:
        signature = jws.extract_compact(token.encode("ascii"))
        claims = json.loads(signature.payload)
    except (JoseError, ValueError, UnicodeError) as exc:
        raise TokenRejected("The access token is not a well-formed JWT.") from exc
    if not isinstance(claims, dict):
        raise TokenRejected("The access token's payload is not a JSON object.")
    return dict(signature.headers()), claims


def _check_header(header: Mapping[str, Any], *, algorithms: list[str], require_typ: bool) -> None:
    alg = header.get("alg")
    if alg not in algorithms:
        raise TokenRejected(f"The token's algorithm {alg!r} is not accepted (only {algorithms}).")
    typ = header.get("typ")
    if require_typ and (not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES):
        raise TokenRejected("The token is not an RFC 9068 access token (header typ: at+jwt).")


def _decode(token: str, keys: KeySet, algorithms: list[str]) -> jwt.Token:
    try:
        return jwt.decode(token, keys, algorithms=algorithms)
    except (JoseError, ValueError) as exc:
        raise TokenRejected("The token's signature does not verify.") from exc


def _validate_claims(
    claims: Mapping[str, Any], *, issuer: str, audience: str, essential: tuple[str, ...]
) -> None:
    options: dict[str, Any] = {name: {"essential": True} for name in essential}
    options["iss"] = {"essential": True, "value": issuer}
    options["aud"] = {"essential": True, "value": audience}
    registry = jwt.JWTClaimsRegistry(leeway=LEEWAY_SECONDS, **options)
    try:
        registry.validate(dict(claims))
    except ExpiredTokenError as exc:
        raise TokenRejected("The token has expired.") from exc
    except MissingClaimError as exc:
        raise TokenRejected(f"The token lacks the claim(s) {exc.claim}.") from exc
    except ClaimError as exc:
        messages = {
            "aud": f"The token is not meant for this service (aud must include {audience!r}).",
            "iss": "The token's issuer is not trusted.",
            "nbf": "The token is not valid yet (nbf).",
            "iat": "The token claims to be issued in the future (iat).",
        }
        raise TokenRejected(
            messages.get(exc.claim, f"The token's claim {exc.claim} is invalid.")
        ) from exc
    except JoseError as exc:
        raise TokenRejected("The token's claims are invalid.") from exc


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    value = claims.get("scope")
    if value is None:
        return frozenset()
    if not isinstance(value, str):
        raise TokenRejected("The token's scope claim must be a space-separated string.")
    return parse_scopes(value)


class RemoteKeySet:
    """An external issuer's JWKS, from a file or a URL, cached per process (keys are public)."""

    def __init__(
        self, trusted: TrustedIssuer, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.trusted = trusted
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._kids: frozenset[str] = frozenset()
        self._fetched_at = 0.0
        self._file_mtime: float | None = None

    def get(self, kid: str | None) -> KeySet:
        with self._lock:
            now = self._clock()
            stale = self._keys is None or now - self._fetched_at > JWKS_TTL_SECONDS
            unknown_kid = kid is not None and kid not in self._kids
            if self.trusted.jwks_file is not None:
                mtime = self._mtime(self.trusted.jwks_file)
                if self._keys is None or mtime != self._file_mtime:
                    self._store(self._read_file(self.trusted.jwks_file), now)
                    self._file_mtime = mtime
            elif stale or (unknown_kid and now - self._fetched_at > JWKS_MIN_REFRESH_SECONDS):
                self._store(self._fetch(), now)
            if self._keys is None:
                raise TokenRejected("The issuer's keys are not available.")
            return self._keys

    @staticmethod
    def _mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError as exc:
            raise TokenRejected("The issuer's keys are not available.") from exc

    def _read_file(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.error(
                "cannot read JWKS %s of trusted issuer %s: %s", path, self.trusted.issuer, exc
            )
            raise TokenRejected("The issuer's keys are not available.") from exc

    def _fetch(self) -> Any:
        url = self.trusted.jwks_url
        assert url is not None
        try:
            response = httpx.get(url, timeout=5.0, follow_redirects=False)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.error("cannot fetch JWKS of trusted issuer %s: %s", self.trusted.issuer, exc)
            if self._keys is not None:
                return None  # keep serving the keys we have
            raise TokenRejected("The issuer's keys are not available.") from exc

    def _store(self, document: Any, now: float) -> None:
        if document is None:
            self._fetched_at = now
            return
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise TokenRejected("The issuer's keys are not available.")
        public = []
        for item in keys:
            # Public asymmetric keys only: a symmetric or private entry is never a verifier.
            if isinstance(item, dict) and item.get("kty") in _ASYMMETRIC_KEY_TYPES:
                public.append(
                    {k: v for k, v in item.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}
                )
        key_set = KeySet.import_key_set({"keys": public})
        self._keys = key_set
        self._kids = frozenset(str(key.kid) for key in key_set.keys if key.kid)
        self._fetched_at = now


class TokenVerifier:
    """Checks a bearer token end to end except for the client's current state (see validator)."""

    def __init__(self, settings: Settings, keys: SigningKeys) -> None:
        self.settings = settings
        self.keys = keys
        self.external = {
            trusted.issuer: RemoteKeySet(trusted) for trusted in settings.trusted_issuers
        }
        # Whether `verify` may block on the network (an issuer's JWKS by URL).
        self.may_fetch_keys = any(trusted.jwks_url for trusted in settings.trusted_issuers)

    def verify(self, token: str) -> VerifiedToken:
        header, unverified = _peek(token)
        issuer = unverified.get("iss")
        if issuer == self.settings.issuer:
            return self._verify_own(token, header)
        if isinstance(issuer, str) and issuer in self.external:
            return self._verify_external(token, header, self.external[issuer])
        raise TokenRejected("The token's issuer is not trusted.")

    def _verify_own(self, token: str, header: Mapping[str, Any]) -> VerifiedToken:
        _check_header(header, algorithms=[ALGORITHM], require_typ=True)
        decoded = _decode(token, self.keys.verification_set(), [ALGORITHM])
        claims = decoded.claims
        _validate_claims(
            claims,
            issuer=self.settings.issuer,
            audience=self.settings.audience,
            essential=("exp", "iat", "sub", "jti", "client_id"),
        )
        client_id = claims["client_id"]
        publisher = claims.get("publisher")
        if not isinstance(client_id, str) or not (publisher is None or isinstance(publisher, str)):
            raise TokenRejected("The token's client_id or publisher claim is malformed.")
        return VerifiedToken(
            issuer=self.settings.issuer,
            client_id=client_id,
            subject=str(claims["sub"]),
            scopes=_scopes(claims),
            publisher=publisher,
            external=False,
            claims=claims,
        )

    def _verify_external(
        self, token: str, header: Mapping[str, Any], remote: RemoteKeySet
    ) -> VerifiedToken:
        trusted = remote.trusted
        algorithms = [str(name) for name in trusted.algorithms]
        _check_header(header, algorithms=algorithms, require_typ=trusted.require_at_jwt)
        kid = header.get("kid")
        decoded = _decode(token, remote.get(kid if isinstance(kid, str) else None), algorithms)
        claims = decoded.claims
        _validate_claims(
            claims,
            issuer=trusted.issuer,
            audience=trusted.audience or self.settings.audience,
            essential=("exp", "sub"),
        )
        subject = str(claims.get("client_id") or claims["sub"])
        # An external token never speaks for a publisher, and gets at most the issuer's scopes.
        return VerifiedToken(
            issuer=trusted.issuer,
            client_id=f"{trusted.issuer}#{subject}",
            subject=str(claims["sub"]),
            scopes=_scopes(claims) & frozenset(trusted.scopes),
            publisher=None,
            external=True,
            claims=claims,
        )
