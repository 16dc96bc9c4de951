#!/usr/bin/env bash
# A PostgreSQL streaming replica of the local primary, on this machine (Debian's clusters):
# cluster `replica` on port 5433, made with `pg_basebackup -R` from 127.0.0.1:5432, for
# `EFDB_READ_DATABASE_URL` (README, "Read replica"). Run as root. Idempotent: a replica
# already answering in recovery and streaming is left as it is; one that will not start or
# no longer streams (a stale data directory whose WAL the primary has since recycled) is
# dropped and made again. `deploy/start-replica.sh stop` stops it (its data is kept).
#
# Environment: EFDB_REPLICA_PORT (5433), EFDB_PRIMARY_PORT (5432), PG_VERSION (the first
# version under /etc/postgresql).
set -euo pipefail

VERSION="${PG_VERSION:-$(ls /etc/postgresql | head -n 1)}"
PRIMARY_PORT="${EFDB_PRIMARY_PORT:-5432}"
REPLICA_PORT="${EFDB_REPLICA_PORT:-5433}"
CLUSTER=replica
CONF_DIR="/etc/postgresql/$VERSION/$CLUSTER"
DATA_DIR="/var/lib/postgresql/$VERSION/$CLUSTER"
PRIMARY_HBA="/etc/postgresql/$VERSION/main/pg_hba.conf"

as_postgres() { runuser -u postgres -- "$@"; }
replica_sql() { psql -X -q -At -h 127.0.0.1 -p "$REPLICA_PORT" -U postgres -d postgres -c "$1" 2>/dev/null; }
pg_ctl_replica() { pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" "$@"; }

if [ "${1:-}" = "stop" ]; then
    [ -d "$CONF_DIR" ] && pg_ctl_replica stop -m fast || true
    exit 0
fi

# In recovery and its WAL receiver streaming from the primary.
streaming() {
    [ "$(replica_sql "SELECT pg_is_in_recovery()")" = "t" ] \
        && [ "$(replica_sql "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")" = "1" ]
}

wait_streaming() {
    for _ in $(seq 1 "$1"); do
        streaming && return 0
        sleep 1
    done
    return 1
}

if streaming; then
    # Replay left paused (tests/test_read_replica.py pauses it for a moment) goes on.
    replica_sql "SELECT pg_wal_replay_resume()" >/dev/null || true
    echo "replica: already streaming on port $REPLICA_PORT"
    exit 0
fi

# The primary must accept replication connections from 127.0.0.1 (`all` in pg_hba.conf does
# not cover them).
if ! grep -Eq '^[[:space:]]*host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32' "$PRIMARY_HBA"; then
    echo "replica: allowing replication from 127.0.0.1 on the primary"
    printf '%s\n' "host replication all 127.0.0.1/32 trust" >> "$PRIMARY_HBA"
    as_postgres psql -X -q -p "$PRIMARY_PORT" -c "SELECT pg_reload_conf()" >/dev/null
fi

# A replica left by an earlier run: start it if stopped, and keep it if it streams again.
if [ -f "$CONF_DIR/postgresql.conf" ] && [ -f "$DATA_DIR/standby.signal" ]; then
    echo "replica: starting the existing cluster"
    pg_ctl_replica start 2>/dev/null || true
    if wait_streaming 20; then
        echo "replica: streaming on port $REPLICA_PORT"
        exit 0
    fi
    echo "replica: the existing cluster does not stream (stale); making it again"
fi

if [ -d "$CONF_DIR" ]; then
    pg_dropcluster --stop "$VERSION" "$CLUSTER" || true
fi
rm -rf "$CONF_DIR" "$DATA_DIR"

echo "replica: pg_basebackup from 127.0.0.1:$PRIMARY_PORT"
# Debian's configuration for the new cluster (port, paths, logging); its data directory is
# then replaced by the primary's copy, with standby.signal and primary_conninfo (-R).
pg_createcluster "$VERSION" "$CLUSTER" -p "$REPLICA_PORT" >/dev/null
# Emptied, not removed: its parent directory may be root's.
find "$DATA_DIR" -mindepth 1 -delete
as_postgres pg_basebackup -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$DATA_DIR" \
    -R -X stream -c fast
# The same clients as the primary's (trust on 127.0.0.1 here).
cp "$PRIMARY_HBA" "$CONF_DIR/pg_hba.conf"
chown postgres:postgres "$CONF_DIR/pg_hba.conf"
pg_ctl_replica start
if ! wait_streaming 60; then
    echo "replica: did not reach streaming in 60 s; see /var/log/postgresql/postgresql-$VERSION-$CLUSTER.log" >&2
    exit 1
fi
echo "replica: streaming on port $REPLICA_PORT"
