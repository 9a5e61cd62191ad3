#!/bin/sh
# `make bench`: Loft beside Dovecot. Needs build/loftd and build/loftctl
# (the Makefile builds them first) and Dovecot from Debian (scripts/deps.sh
# installs it). Arguments go to bench/run.py (--quick, --only NAME, --reps N).
set -eu
cd "$(dirname "$0")/.."
export LOFT_SRC="$PWD" LOFT_BUILD="${LOFT_BUILD:-$PWD/build}"
exec python3 bench/run.py "$@"
