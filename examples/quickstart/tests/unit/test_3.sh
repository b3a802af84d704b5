#!/bin/sh
# Writes a scratch file where only this test's slot looks; a collision would
# show up as someone else's content.
set -e
echo "$PARTEST_WORKER 3" > "$TMPDIR/scratch"
sleep 0.1
grep -q "$PARTEST_WORKER 3" "$TMPDIR/scratch"
