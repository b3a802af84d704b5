#!/bin/sh
# Runs alone after the parallel phase ([serial] filter), on slot gw0, whose
# database was cloned from the template the setup command migrated.
set -e
[ "$PARTEST_WORKER" = gw0 ]
sqlite3 "$DATABASE_URL" ".schema visits" | grep -q "CREATE TABLE visits"
