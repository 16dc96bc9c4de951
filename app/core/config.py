"""Settings: one validated class, read from ``EFDB_*`` environment variables and ``.env``."""

from __future__ import annotations

import re
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, IPvAnyNetwork, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# A built wheel carries alembic.ini, migrations/ and seed_data/ here (setup.py copies them in);
# a source checkout (and an editable install) reads them from the project root.
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "_bundled"
# The default data directory, relative to the working directory: `EFDB_DATA_DIR` moves it.
VAR_DIR = Path("var")
# An origin as browsers send it: scheme, host, optional port; no path, no trailing slash.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")
# An object store for the exports: s3://bucket or s3://bucket/prefix (bucket names per S3 rules).
S3_URL = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](?:/[^?#\s]*)?")
# scrypt's N for client secrets in production (app/auth/hashing.py keeps the same figure).
PRODUCTION_SECRET_HASH_COST = 2**14


LOOPBACK: tuple[IPv4Network | IPv6Network, ...] = (
    IPv4Network("127.0.0.1/32"),
    IPv6Network("::1/128"),
)

ExternalAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"
]
ExternalScope = Literal["factors:read", "datasets:review", "admin"]


class TrustedIssuer(BaseModel):
    """An external authorization server whose access tokens the API also accepts.

    Given as JSON in ``EFDB_TRUSTED_ISSUERS``, e.g.
    ``[{"issuer": "https://sso.example.gov", "jwks_url": "https://sso.example.gov/jwks"}]``.
    Its tokens never carry a publisher, so they can be granted at most the scopes listed here.
    """

    issuer: str
    jwks_url: str | None = None
    jwks_file: Path | None = None
    # Defaults to this service's own audience (EFDB_AUDIENCE).
    audience: str | None = None
    # Asymmetric algorithms only: HS* and none can never be configured.
    algorithms: list[ExternalAlgorithm] = Field(default=["RS256"], min_length=1)
    # The most this issuer's tokens may grant; `datasets:write` needs a publisher, so it is absent.
    scopes: list[ExternalScope] = ["factors:read"]
    # RFC 9068 tokens say `typ: at+jwt`; some issuers (older Keycloak, Entra ID v1) do not.
    require_at_jwt: bool = True

    @model_validator(mode="after")
    def _one_key_source(self) -> TrustedIssuer:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError(
                f"trusted issuer {self.issuer}: give exactly one of jwks_url, jwks_file"
            )
        if self.jwks_url is not None and not self.jwks_url.startswith("https://"):
            raise ValueError(f"trusted issuer {self.issuer}: jwks_url must be https://")
        return self


def shipped_path(name: str) -> Path:
    """A file or directory the service ships beside its code (`alembic.ini`, `migrations`,
    `seed_data`): inside the installed package for a wheel, at the project root otherwise."""
    bundled = BUNDLED_DIR / name
    return bundled if bundled.exists() else PROJECT_ROOT / name


# Settings whose default lies in the data directory, and where in it.
DATA_DIR_DEFAULTS = {
    "generated_signing_key": "signing-key.pem",
    "generated_release_signing_key": "release-signing-key.pem",
    "export_dir": "exports",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EFDB_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    # Everything the service writes: the SQLite database, the generated keys (token, release,
    # webhook) and the export files, unless a setting of its own moves one of them.
    data_dir: Path = VAR_DIR
    database_url: str = f"sqlite:///{VAR_DIR / 'efdb.sqlite3'}"
    # A PostgreSQL streaming replica of `database_url` (README, "Read replica"): anonymous
    # GET and HEAD requests read from it; writes, token-bearing requests and the reads right
    # after a client's write go to the primary.
    read_database_url: str | None = None
    # After a write, how long the writer's reads stay on the primary (its `efdb_primary_until`
    # cookie), so that it reads its own write however far the replica lags behind.
    read_your_writes_seconds: int = Field(default=5, ge=0, le=60 * 60)
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "efdb"
    signing_key: Path | None = None
    # Outside production, with no EFDB_SIGNING_KEY, a key is generated here on first use.
    generated_signing_key: Path = VAR_DIR / DATA_DIR_DEFAULTS["generated_signing_key"]
    # The release signing key (ES256, P-256), separate from the token key: signs release
    # statements, snapshot manifests and audit checkpoints. Outside production, unset means a
    # key generated here on first use (and replaced by `efdb keys rotate`).
    release_signing_key: Path | None = None
    generated_release_signing_key: Path = (
        VAR_DIR / DATA_DIR_DEFAULTS["generated_release_signing_key"]
    )
    # scrypt's N for new client secrets. Only a test configuration lowers it (to keep a test
    # suite that creates hundreds of clients fast); production refuses anything below 2**14.
    secret_hash_cost: int = Field(default=PRODUCTION_SECRET_HASH_COST, ge=2)
    token_ttl_seconds: int = Field(default=900, ge=60, le=86400)
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    export_dir: Path = VAR_DIR / DATA_DIR_DEFAULTS["export_dir"]
    # Set (`s3://bucket/prefix`): export and snapshot files are kept in this S3-compatible
    # object store (app/exports/object_store.py), `export_dir` only stages them while they are
    # written or read, and downloads are answered with a redirect to a signed URL. Credentials
    # come from the environment the library reads (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY…).
    export_store_url: str | None = None
    # The store's endpoint (`https://minio.internal:9000`; AWS_ENDPOINT_URL otherwise) and region.
    export_store_endpoint: str | None = None
    export_store_region: str | None = None
    # How long a signed download URL is valid (object store only). Short: the URL lets anyone
    # holding it read the file, registered datasets' files included.
    export_signed_url_seconds: int = Field(default=300, ge=1, le=60 * 60)
    # A snapshot of more factors than this has no factors.xlsx (a workbook takes ~13 min per
    # million rows to write, and a spreadsheet is no way to read a national snapshot); its
    # versions' export.xlsx and its Parquet, Arrow files hold the same rows.
    snapshot_xlsx_max_rows: int = Field(default=100_000, ge=0)
    # A snapshot of more factors than this has no factors.jsonld.zip and factors.ilcd.zip
    # (assembled from its releases' own packages at ~1,250–1,550 rows a second: ~12 minutes
    # each per million rows, which would triple a national snapshot's time); its versions'
    # export.jsonld.zip and export.ilcd.zip hold them.
    snapshot_packages_max_rows: int = Field(default=100_000, ge=0)
    # Set (e.g. `/_efdb_files/`): export and snapshot files are handed to the front server
    # (nginx `X-Accel-Redirect` to this prefix + the file's path in the export store) after
    # the application's checks, instead of being sent by the application (deploy/nginx.conf).
    x_accel_redirect_prefix: str | None = None
    # Fernet key (urlsafe base64 of 32 bytes) that encrypts webhook signing secrets at rest.
    # Unset outside production: generated once beside the generated signing key.
    webhook_key: SecretStr | None = None
    # How long one webhook delivery waits for its receiver before it counts as failed (and is
    # retried later); also how long a stopping server may wait for a delivery in flight.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # The wait before a failed delivery's first retry; each later retry waits twice as long.
    webhook_retry_first_seconds: float = Field(default=5.0, gt=0, le=86_400)
    max_upload_mb: int = Field(default=200, ge=1)
    max_upload_rows: int = Field(default=2_000_000, ge=1)
    # JSON (and any non-upload) request bodies, refused with 413 before they are parsed.
    max_json_kb: int = Field(default=256, ge=1)
    # Batch routes (resolve, estimate:batch): 1000 lines take ~150 KB.
    max_batch_json_kb: int = Field(default=1024, ge=1)
    # A Parquet upload's columns, uncompressed, as its metadata declares them.
    max_upload_uncompressed_mb: int = Field(default=512, ge=1)
    # Database time per statement, by kind of request (503 + Retry-After past it).
    db_timeout_read_ms: int = Field(default=5_000, ge=1)
    db_timeout_search_ms: int = Field(default=10_000, ge=1)
    db_timeout_batch_ms: int = Field(default=20_000, ge=1)
    db_timeout_write_ms: int = Field(default=60_000, ge=1)
    db_timeout_export_ms: int = Field(default=600_000, ge=1)
    # Expensive requests (search, batches, uploads, snapshots) at once per worker.
    max_expensive_requests: int = Field(default=8, ge=1)
    # Anonymous search pages each worker keeps while the catalogue's generation stays the same
    # (app/factors/page_cache.py; a page of 100 is ~150 kB); 0: none.
    search_cache_entries: int = Field(default=256, ge=0)
    retry_after_seconds: int = Field(default=5, ge=1)
    # `json`: every log line one JSON object, with a service access line per request
    # (app/core/logs.py); `text`: uvicorn's lines.
    log_format: Literal["text", "json"] = "text"
    # Who may read /metrics without an `admin` token (app/core/metrics.py).
    metrics_networks: list[IPvAnyNetwork] = Field(default_factory=lambda: list(LOOPBACK))
    # Rate limits (app/core/rate_limits.py): requests a minute per client (a valid bearer
    # token) or per address, each budget on its own; 0: unlimited.
    rate_reads_per_minute: int = Field(default=1200, ge=0)
    rate_writes_per_minute: int = Field(default=120, ge=0)
    # Token endpoint (app/auth/throttle.py): attempts a minute per address and per client id
    # named, then the lockout (in the database, for every worker).
    token_attempts_per_ip: int = Field(default=30, ge=0)
    token_attempts_per_client: int = Field(default=10, ge=0)
    token_lockout_failures: int = Field(default=10, ge=1)
    token_lockout_window_seconds: int = Field(default=900, ge=1)
    token_lockout_seconds: int = Field(default=900, ge=1)
    seed_dir: Path = Field(default_factory=lambda: shipped_path("seed_data"))
    # Answers of at least this many bytes are compressed when the client offers an encoding.
    compress_min_bytes: int = Field(default=1024, ge=0)
    # Lookups by code whose answers each worker keeps (app/factors/lookup.py); 0: none.
    lookup_cache_entries: int = Field(default=10_000, ge=0)
    # Factors each worker may hold in its resolve index (app/factors/resolve_index.py), the
    # releases most recently resolved against; 0: none (resolve asks the database).
    resolve_index_factors: int = Field(default=200_000, ge=0)
    # Cross-origin access (app/core/cors.py): reads from these origins (`*`: any), writes
    # only from origins named one by one.
    cors_origins: list[str] = Field(default_factory=list)
    cors_write_origins: list[str] = Field(default_factory=list)
    # Which seed datasets `efdb seed` (and `efdb serve` on an empty database) loads: `core`, the
    # curated datasets; `full`, also those imported from the publishers' own files
    # (dataset.json `"scope": "full"`: DESNZ 2022-2025, MEE electricity by announcement).
    seed_scope: Literal["core", "full"] = "full"
    # Where the rate limits are counted: unset, in each worker's memory; a Redis URL
    # (`redis://host:6379/0`, `rediss://…`, `unix:///path?db=0`), one budget for every worker
    # and machine using the same Redis and prefix.
    redis_url: str | None = Field(default=None, pattern=r"^(rediss?|unix)://")
    redis_prefix: str = Field(default="efdb", min_length=1, pattern=r"^[A-Za-z0-9._:\-]+$")
    # Public base URL used in `next` links when the service sits behind a proxy; relative otherwise.
    public_base_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults_in_the_data_dir(cls, data: object) -> object:
        """What is not set explicitly goes into `data_dir` (default `./var`)."""
        if not isinstance(data, dict):
            return data
        given = data.get("data_dir")
        data_dir = Path(given) if given not in (None, "") else VAR_DIR
        filled = dict(data)
        if not filled.get("database_url"):
            filled["database_url"] = f"sqlite:///{data_dir / 'efdb.sqlite3'}"
        for name, relative in DATA_DIR_DEFAULTS.items():
            if filled.get(name) in (None, ""):
                filled[name] = data_dir / relative
        return filled

    @model_validator(mode="after")
    def _signing_key_outside_development(self) -> Settings:
        if self.environment == "production" and self.signing_key is None:
            raise ValueError("EFDB_SIGNING_KEY must point to a PEM private key in production")
        if self.environment == "production" and not self.issuer.startswith("https://"):
            raise ValueError("EFDB_ISSUER must be the service's public https:// URL in production")
        if self.secret_hash_cost & (self.secret_hash_cost - 1):
            raise ValueError("EFDB_SECRET_HASH_COST must be a power of two")
        if self.environment == "production" and self.secret_hash_cost < PRODUCTION_SECRET_HASH_COST:
            raise ValueError(
                f"EFDB_SECRET_HASH_COST below {PRODUCTION_SECRET_HASH_COST} is for tests only"
            )
        for origin in [*self.cors_origins, *self.cors_write_origins]:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"CORS origin {origin!r} is not scheme://host[:port]")
        if "*" in self.cors_write_origins:
            raise ValueError("EFDB_CORS_WRITE_ORIGINS must name each origin; `*` is refused")
        if self.read_database_url and not (
            self.read_database_url.startswith("postgresql") and not self.is_sqlite
        ):
            raise ValueError(
                "EFDB_READ_DATABASE_URL is a PostgreSQL replica of a PostgreSQL EFDB_DATABASE_URL"
            )
        prefix = self.x_accel_redirect_prefix
        if prefix and not re.fullmatch(r"/(?:[A-Za-z0-9._~\-]+/)*", prefix):
            raise ValueError("EFDB_X_ACCEL_REDIRECT_PREFIX must be a path like /_efdb_files/")
        if self.export_store_url:
            if not re.fullmatch(S3_URL, self.export_store_url):
                raise ValueError("EFDB_EXPORT_STORE_URL must be s3://bucket or s3://bucket/prefix")
            if prefix:
                raise ValueError(
                    "EFDB_X_ACCEL_REDIRECT_PREFIX hands nginx a file of the export directory; "
                    "with EFDB_EXPORT_STORE_URL downloads are redirected to the object store"
                )
        endpoint = self.export_store_endpoint
        if endpoint is not None and not re.fullmatch(r"https?://[^/?#\s]+/?", endpoint):
            raise ValueError("EFDB_EXPORT_STORE_ENDPOINT must be http(s)://host[:port]")
        if any(trusted.issuer == self.issuer for trusted in self.trusted_issuers):
            raise ValueError("EFDB_TRUSTED_ISSUERS must not list this service's own issuer")
        return self

    @property
    def public_url(self) -> str:
        """The service's public origin (no trailing slash) for every absolute URL it writes in
        pages, snippets and documents: `EFDB_PUBLIC_BASE_URL`, or else the issuer. Never the
        request's `Host`, which any client sets (and a cache would repeat to the next)."""
        return (self.public_base_url or self.issuer).rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
