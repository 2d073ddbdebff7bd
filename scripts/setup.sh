#!/usr/bin/env bash
# Sets up everything the project needs on a fresh machine: a virtual environment in .venv with
# every Python package pinned (constraints.txt), the project installed editable, and Azurite (the
# Azure Storage emulator, from the npm registry) in .azurite/ for the tests. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat setup.py constraints.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
  rm -f .venv/.installed-* && touch "$stamp"
fi

# Azurite, pinned, in a local prefix (never global). 3.35.0 is the newest release whose engines
# allow Node 20; 3.36+ require Node >= 21/22. The tests start .azurite/node_modules/.bin/azurite-blob.
AZURITE_VERSION=3.35.0
installed=$(node -p "require('./.azurite/node_modules/azurite/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$AZURITE_VERSION" ] || [ ! -x .azurite/node_modules/.bin/azurite-blob ]; then
  command -v npm >/dev/null 2>&1 || { echo "setup.sh: npm is needed to install Azurite (Node >= 20)." >&2; exit 1; }
  mkdir -p .azurite
  npm install --prefix .azurite --save-exact --no-audit --no-fund --loglevel=error \
    "azurite@$AZURITE_VERSION"
fi
