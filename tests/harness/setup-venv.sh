#!/usr/bin/env bash
# Create .venv and install gpuhost with its test dependencies, once; a later call only
# reinstalls when pyproject.toml changed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
stamp=.venv/.gpuhost-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "virtual environment .venv is up to date"
  exit 0
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'
echo "$want" >"$stamp"
echo "virtual environment .venv ready"
