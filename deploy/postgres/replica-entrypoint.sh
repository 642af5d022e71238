#!/bin/sh
# The streaming replica: on an empty data directory, copy the primary with pg_basebackup
# (-R writes primary_conninfo and standby.signal; -C -S creates its replication slot, so the
# primary keeps the WAL the replica has not replayed yet), then run postgres as a hot standby.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_isready -h "$PRIMARY_HOST" -p 5432 -U replicator -q; do sleep 1; done
    PGPASSWORD="$POSTGRES_REPLICATION_PASSWORD" pg_basebackup -h "$PRIMARY_HOST" -p 5432 -U replicator \
        -D "$PGDATA" -R -X stream -C -S "${REPLICATION_SLOT:-replica1}" --no-password
    chmod 0700 "$PGDATA"
fi
exec postgres -c hot_standby=on -c hot_standby_feedback=on
