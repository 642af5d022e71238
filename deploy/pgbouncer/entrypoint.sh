#!/bin/sh
# PgBouncer in transaction mode in front of the primary (database "staybase") and the replica
# (database "staybase_replica"); the configuration is written from the environment at start so
# no password is committed.
set -eu
umask 077
cat >/tmp/pgbouncer.ini <<INI
[databases]
staybase = host=${PRIMARY_HOST} port=5432 dbname=${POSTGRES_DB}
staybase_replica = host=${REPLICA_HOST} port=5432 dbname=${POSTGRES_DB}

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
auth_type = scram-sha-256
auth_file = /tmp/userlist.txt
pool_mode = transaction
max_client_conn = ${MAX_CLIENT_CONN:-1000}
default_pool_size = ${DEFAULT_POOL_SIZE:-20}
ignore_startup_parameters = extra_float_digits,options
INI
printf '"%s" "%s"\n' "$POSTGRES_USER" "$POSTGRES_PASSWORD" >/tmp/userlist.txt
exec pgbouncer /tmp/pgbouncer.ini
