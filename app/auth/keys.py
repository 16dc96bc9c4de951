"""The token signing key: RS256, from EFDB_SIGNING_KEY or (outside production) generated once.

RS256 rather than EdDSA: every JWT library that PACT and accounting-tool clients use verifies
RS256, while `EdDSA` is deprecated by RFC 9864 (joserfc warns on each use) and its successor
`Ed25519` is not yet widely supported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import KeySet, RSAKey

from app.core.config import Settings

ALGORITHM = "RS256"
MIN_RSA_BITS = 2048
log = logging.getLogger("efdb.auth")


class SigningKeyError(RuntimeError):
    """The configured signing key is missing or unusable."""


def generate_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_new_key(path: Path) -> None:
    """Create `path` (mode 0600) with a new key, unless another process got there first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(generate_pem())
        # link() is atomic and refuses to overwrite: of two workers starting at once, one wins
        # and both then read the winner's key.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@lru_cache(maxsize=8)
def _parse(path: Path, mtime_ns: int, size: int) -> RSAKey:
    """The key in `path`, parsed once per file version (an RSA parse costs tens of ms, and the
    test suite builds an app per test); a replaced file has a new mtime and is parsed again."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key {path}: {exc.strerror}") from exc
    try:
        key = RSAKey.import_key(pem, parameters={"use": "sig", "alg": ALGORITHM})
    except Exception as exc:  # joserfc raises several types for a bad PEM or a non-RSA key
        raise SigningKeyError(f"{path} is not an RSA private key in PEM form") from exc
    if not key.is_private:
        raise SigningKeyError(f"{path} holds a public key; the service needs the private key")
    if key.raw_value.key_size < MIN_RSA_BITS:
        raise SigningKeyError(f"{path}: an RSA key needs at least {MIN_RSA_BITS} bits")
    key.ensure_kid()  # RFC 7638 thumbprint: stable for the key, published in the JWKS
    return key


def _import(path: Path) -> RSAKey:
    try:
        status = path.stat()
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key {path}: {exc.strerror}") from exc
    key = _parse(path.resolve(), status.st_mtime_ns, status.st_size)
    if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("signing key %s is readable by group or others; chmod 600 it", path)
    return key


class SigningKeys:
    """The service's key, loaded (or, in development, generated) on first use."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._pair: tuple[RSAKey, RSAKey] | None = None

    @property
    def path(self) -> Path:
        return self._settings.signing_key or self._settings.generated_signing_key

    def _loaded(self) -> tuple[RSAKey, RSAKey]:
        if self._pair is None:
            with self._lock:
                if self._pair is None:
                    key = self._load()
                    self._pair = (key, RSAKey.import_key(key.as_dict(private=False)))
        return self._pair

    def _load(self) -> RSAKey:
        if self._settings.signing_key is None:
            if self._settings.environment == "production":
                raise SigningKeyError("EFDB_SIGNING_KEY must be set in production")
            if not self.path.exists():
                log.warning("no EFDB_SIGNING_KEY: generating a development key at %s", self.path)
                write_new_key(self.path)
        return _import(self.path)

    @property
    def private_key(self) -> RSAKey:
        return self._loaded()[0]

    @property
    def public_key(self) -> RSAKey:
        return self._loaded()[1]

    @property
    def kid(self) -> str:
        return str(self.public_key.kid)

    def signing_set(self) -> KeySet:
        """The private key as a one-key set, so that tokens carry its `kid` header."""
        return KeySet([self.private_key])

    def verification_set(self) -> KeySet:
        return KeySet([self.public_key])

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_key.as_dict(private=False)]}
