"""Settings: one validated class, read from ``EFDB_*`` environment variables and ``.env``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EFDB_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = f"sqlite:///{VAR_DIR / 'efdb.sqlite3'}"
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "efdb"
    signing_key: Path | None = None
    export_dir: Path = VAR_DIR / "exports"
    max_upload_mb: int = Field(default=200, ge=1)
    seed_dir: Path = PROJECT_ROOT / "seed_data"
    # Public base URL used in `next` links when the service sits behind a proxy; relative otherwise.
    public_base_url: str | None = None

    @model_validator(mode="after")
    def _signing_key_outside_development(self) -> Settings:
        if self.environment == "production" and self.signing_key is None:
            raise ValueError("EFDB_SIGNING_KEY must point to a PEM private key in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
