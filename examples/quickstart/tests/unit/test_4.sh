#!/bin/sh
# Writes to the slot's own database and its own temp dir; with a shared
# database or directory, another slot's rows or file would show up here.
set -e
sqlite3 "$DATABASE_URL" "INSERT INTO visits VALUES ('$PARTEST_WORKER', 4)"
echo "$PARTEST_WORKER 4" > "$TMPDIR/scratch"
sleep 0.2
[ "$(sqlite3 "$DATABASE_URL" "SELECT count(*) FROM visits WHERE worker != '$PARTEST_WORKER'")" = 0 ]
grep -q "$PARTEST_WORKER 4" "$TMPDIR/scratch"
