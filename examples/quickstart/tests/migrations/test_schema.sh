#!/bin/sh
# Runs alone after the parallel phase ([serial] filter), on slot gw0.
[ "$PARTEST_WORKER" = gw0 ]
