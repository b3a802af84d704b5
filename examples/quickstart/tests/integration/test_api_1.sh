#!/bin/sh
# At most one integration test runs at a time ([groups.integration]).
set -e
touch "$PARTEST_TEST_TMPDIR/response.json"
sleep 0.3
