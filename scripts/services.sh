#!/usr/bin/env bash
# Starts the servers the end-to-end tests talk to, when they are not running:
# PostgreSQL and Redis on 127.0.0.1, and a Docker engine. Idempotent: a
# service that answers is left alone. Needs root (CI and the dev container).
set -u

log() { printf 'services: %s\n' "$*"; }

start_postgres() {
    if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
        log "postgres is up"
        return
    fi
    if ! ls /etc/postgresql >/dev/null 2>&1; then
        log "postgres is not installed (apt-get install postgresql)"
        return
    fi
    log "starting postgres"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do
        pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && return
        sleep 1
    done
    log "postgres did not come up"
}

start_redis() {
    if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
        log "redis is up"
        return
    fi
    if ! command -v redis-server >/dev/null; then
        log "redis is not installed (apt-get install redis-server)"
        return
    fi
    log "starting redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
    for _ in $(seq 1 30); do
        redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG && return
        sleep 0.5
    done
    log "redis did not come up"
}

start_docker() {
    if docker info >/dev/null 2>&1; then
        log "docker is up"
        return
    fi
    if ! command -v dockerd >/dev/null; then
        log "dockerd is not installed (apt-get install docker.io)"
        return
    fi
    log "starting dockerd"
    (dockerd >/tmp/dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    log "dockerd did not come up; see /tmp/dockerd.log"
}

for service in "${@:-postgres redis}"; do
    for s in $service; do
        "start_$s"
    done
done
