"""Per-application auth state: the signing key, the token verifier, Authlib's ResourceProtector."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import ResourceProtector
from fastapi import FastAPI, Request

from app.auth.caching import PrivateWhenAuthorized
from app.auth.keys import SigningKeys
from app.auth.server import AccessTokenGenerator
from app.auth.tokens import TokenVerifier
from app.auth.validator import BearerValidator
from app.core.config import Settings


class AuthRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = SigningKeys(settings)
        self.verifier = TokenVerifier(settings, self.keys)
        self.generator = AccessTokenGenerator(settings=settings, keys=self.keys)
        self.protector = ResourceProtector()
        self.protector.register_token_validator(BearerValidator(self.verifier))
        if settings.environment == "production":
            # Outside development a missing or unusable key stops start-up, not the first request.
            self.keys.private_key  # noqa: B018

    @property
    def token_endpoint(self) -> str:
        return self.settings.issuer.rstrip("/") + "/oauth/token"

    @property
    def jwks_uri(self) -> str:
        return self.settings.issuer.rstrip("/") + "/.well-known/jwks.json"


def install_auth(app: FastAPI, settings: Settings) -> None:
    app.state.auth = AuthRuntime(settings)
    app.add_middleware(PrivateWhenAuthorized)


def get_runtime(request: Request) -> AuthRuntime:
    runtime: AuthRuntime = request.app.state.auth
    return runtime
