#!/bin/sh
# A Redis Sentinel watching the master "staybase". Sentinel rewrites its configuration file
# (failovers, discovered replicas), so it gets a fresh writable copy at every start.
set -eu
cat >/tmp/sentinel.conf <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel monitor staybase ${REDIS_MASTER_HOST} 6379 ${SENTINEL_QUORUM:-2}
sentinel down-after-milliseconds staybase 5000
sentinel failover-timeout staybase 30000
sentinel parallel-syncs staybase 1
CONF
until redis-cli -h "$REDIS_MASTER_HOST" -p 6379 ping >/dev/null 2>&1; do sleep 1; done
exec redis-sentinel /tmp/sentinel.conf
