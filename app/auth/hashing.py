"""Client secrets: generated once, stored as salted scrypt hashes, compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import cache

from app.core.config import PRODUCTION_SECRET_HASH_COST

# scrypt with N=2**14, r=8, p=1 (16 MiB, tens of milliseconds) in production. The parameters
# are stored with each hash, so they can be raised later without invalidating existing secrets.
PRODUCTION_COST = PRODUCTION_SECRET_HASH_COST
_R, _P = 8, 1
_DKLEN = 32
_SCHEME = "scrypt"


def generate_secret() -> str:
    """A client secret: 256 random bits, URL-safe, shown to the operator exactly once.

    Never one beginning with `-` (one in 64 would): the secret is given on command lines
    (`efdb import … --client-secret SECRET`), where such a value reads as an option and is
    refused."""
    while True:
        secret = secrets.token_urlsafe(32)
        if not secret.startswith("-"):
            return secret


def generate_client_id() -> str:
    return "efdb_" + secrets.token_urlsafe(16)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_DKLEN, maxmem=64 * 1024 * 1024
    )


def hash_secret(secret: str, *, cost: int = PRODUCTION_COST) -> str:
    """`scrypt$N$r$p$salt$hash` with a fresh 128-bit salt.

    `cost` is scrypt's N; only a test configuration lowers it (`Settings.secret_hash_cost`,
    which production refuses below the default).
    """
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, cost, _R, _P)
    return f"{_SCHEME}${cost}${_R}${_P}${_b64(salt)}${_b64(digest)}"


@cache
def _dummy_hash() -> str:
    # Verified against when the client is unknown, so that an unknown client id costs the same
    # time as a wrong secret and the two cannot be told apart.
    return hash_secret(generate_secret())


def verify_secret(secret: str, stored: str | None) -> bool:
    """True if `secret` matches `stored`; with no stored hash, spend the same time and say no."""
    try:
        scheme, n, r, p, salt, digest = (stored or _dummy_hash()).split("$")
        if scheme != _SCHEME:
            return False
        computed = _scrypt(secret, _unb64(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(computed, _unb64(digest)) and stored is not None
