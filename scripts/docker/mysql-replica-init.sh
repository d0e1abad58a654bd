#!/bin/bash
# Run once by the mysql:8.4 entrypoint of the mysql84-replica service (see
# docker-compose.yml) while it initialises a new data volume: points the
# replica at mysql84-primary with GTID auto-positioning and starts replicating.
# The entrypoint may source this file instead of executing it, so it neither
# calls `exit` nor changes shell options.

shadowcut_replica_init() {
    local source_host=${REPLICATION_SOURCE_HOST:-mysql84-primary}
    local i
    for i in $(seq 1 120); do
        if mysqladmin ping --protocol=tcp -h "$source_host" -urepl -prepl --silent >/dev/null 2>&1; then
            break
        fi
        echo "mysql-replica-init: waiting for $source_host ($i)"
        sleep 1
    done
    mysql --protocol=socket -uroot -p"${MYSQL_ROOT_PASSWORD}" <<SQL
CHANGE REPLICATION SOURCE TO
    SOURCE_HOST = '${source_host}',
    SOURCE_PORT = 3306,
    SOURCE_USER = 'repl',
    SOURCE_PASSWORD = 'repl',
    SOURCE_AUTO_POSITION = 1,
    SOURCE_CONNECT_RETRY = 1,
    GET_SOURCE_PUBLIC_KEY = 1;
START REPLICA;
SQL
}

shadowcut_replica_init
