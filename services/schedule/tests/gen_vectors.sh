#!/bin/sh
# Regenerates tests/data/systemd-vectors.json from the local systemd-analyze (must be 252:
# Cairn promises systemd 252's answers). Needs python3 with zoneinfo and the tzdata files.
set -eu
cd "$(dirname "$0")"
version=$(systemd-analyze --version | head -n1)
case "$version" in
  "systemd 252 "*) ;;
  *) echo "need systemd 252, found: $version" >&2; exit 1 ;;
esac
exec python3 gen_vectors.py
