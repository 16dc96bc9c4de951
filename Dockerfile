# efdb: the emission-factor database service.
#
#   docker build -t efdb .
#   docker run -p 8000:8000 -v efdb-data:/var/lib/efdb efdb
#
# Out of the box the container keeps a SQLite database and exports under /var/lib/efdb
# (mount a volume there to keep them). That is for trying the service out. Production sets:
#   EFDB_ENVIRONMENT=production
#   EFDB_SIGNING_KEY=/run/secrets/efdb-signing-key.pem   (a PEM private key, mounted as a secret)
#   EFDB_RELEASE_SIGNING_KEY=/run/secrets/efdb-release-signing-key.pem   (P-256, signs releases)
#   EFDB_DATABASE_URL=postgresql+psycopg://USER:PASSWORD@HOST:5432/efdb
# and usually EFDB_ISSUER and EFDB_PUBLIC_BASE_URL for the public address.
#
# Other commands run through the same entrypoint, e.g. `docker run efdb db upgrade` or
# `docker run efdb audit verify`.

FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A fixed numeric UID/GID so that orchestrators can check runAsNonRoot and volume owners match.
RUN groupadd --system --gid 10001 efdb \
    && useradd --system --uid 10001 --gid efdb --no-log-init \
        --home-dir /var/lib/efdb --shell /usr/sbin/nologin efdb \
    && mkdir -p /var/lib/efdb/exports \
    && chown -R efdb:efdb /var/lib/efdb

WORKDIR /opt/efdb

# The code stays owned by root: the service user can read it but not change it.
COPY pyproject.toml README.md alembic.ini ./
COPY migrations/ ./migrations/
COPY seed_data/ ./seed_data/
COPY app/ ./app/

# Editable on purpose: app.core.config finds alembic.ini, migrations/ and seed_data/ relative
# to the app package's source directory, so the package must run from /opt/efdb rather than
# from a copy in site-packages. Precompile it, since the service user cannot write __pycache__.
RUN pip install --no-cache-dir --editable . \
    && python -m compileall -q app migrations

ENV EFDB_DATABASE_URL=sqlite:////var/lib/efdb/efdb.sqlite3 \
    EFDB_EXPORT_DIR=/var/lib/efdb/exports

VOLUME ["/var/lib/efdb"]

USER 10001:10001

EXPOSE 8000

# Liveness only (no curl in the slim image); /readyz also checks the database and migrations.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# `efdb serve` migrates the database to head, seeds it if it is empty, then runs uvicorn.
ENTRYPOINT ["efdb"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
