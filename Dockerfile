# efdb: the emission-factor database service.
#
#   docker build -t efdb .
#   docker run -p 8000:8000 -v efdb-data:/var/lib/efdb efdb
#
# Out of the box the container keeps everything it writes under /var/lib/efdb (EFDB_DATA_DIR:
# the SQLite database, the generated development keys, the export files; mount a volume there
# to keep them). That is for trying the service out. Production sets:
#   EFDB_ENVIRONMENT=production
#   EFDB_SIGNING_KEY=/run/secrets/efdb-signing-key.pem   (a PEM private key, mounted as a secret)
#   EFDB_RELEASE_SIGNING_KEY=/run/secrets/efdb-release-signing-key.pem   (P-256, signs releases)
#   EFDB_DATABASE_URL=postgresql+psycopg://USER:PASSWORD@HOST:5432/efdb
# and EFDB_ISSUER (and usually EFDB_PUBLIC_BASE_URL) for the public address.
#
# Other commands run through the same entrypoint, e.g. `docker run efdb db upgrade` or
# `docker run efdb audit verify`.

# --- Build: a wheel that carries alembic.ini, migrations/ and seed_data/ (see setup.py). ---
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md alembic.ini ./
COPY migrations/ ./migrations/
COPY seed_data/ ./seed_data/
COPY app/ ./app/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- The image: the wheel installed (not editable), owned by root; data only in the volume. ---
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A fixed numeric UID/GID so that orchestrators can check runAsNonRoot and volume owners match.
RUN groupadd --system --gid 10001 efdb \
    && useradd --system --uid 10001 --gid efdb --no-log-init \
        --home-dir /var/lib/efdb --shell /usr/sbin/nologin efdb \
    && mkdir -p /var/lib/efdb \
    && chown -R efdb:efdb /var/lib/efdb

# The code stays owned by root in site-packages: the service user can read it, not change it.
# pip compiles the bytecode, since the service user cannot write __pycache__.
COPY --from=build /wheels/ /tmp/wheels/
RUN pip install --no-cache-dir --compile /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels

# Nothing is written to the working directory (root-owned): everything goes to EFDB_DATA_DIR.
WORKDIR /opt/efdb

ENV EFDB_DATA_DIR=/var/lib/efdb

VOLUME ["/var/lib/efdb"]

USER 10001:10001

EXPOSE 8000

# Liveness only (no curl in the slim image); /readyz also checks the database and migrations.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# `efdb serve` migrates the database to head, seeds it if it is empty, then runs uvicorn.
ENTRYPOINT ["efdb"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
