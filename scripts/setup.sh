#!/usr/bin/env bash
# Sets up everything the project needs on a fresh machine: a virtual environment in .venv with
# every Python package pinned (constraints.txt), the project installed editable, and Azurite (the
# Azure Storage emulator, from the npm registry) in tools/azurite/ for the tests. Safe to run again.
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
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev,distributed]"
  rm -f .venv/.installed-* && touch "$stamp"
fi

# Azurite from tools/azurite (package.json pins it, package-lock.json everything it pulls in),
# installed there with `npm ci`, never globally. 3.35.0 is the newest release whose engines allow
# Node 20. The tests start tools/azurite/node_modules/.bin/azurite-blob.
lock_stamp=tools/azurite/node_modules/.installed-$(sha256sum tools/azurite/package-lock.json | cut -c1-16)
if [ ! -f "$lock_stamp" ] || [ ! -x tools/azurite/node_modules/.bin/azurite-blob ]; then
  command -v npm >/dev/null 2>&1 || { echo "setup.sh: npm is needed to install Azurite (Node >= 20)." >&2; exit 1; }
  npm ci --prefix tools/azurite --no-audit --no-fund --loglevel=error
  touch "$lock_stamp"
fi

# Debian packages for the tests marked `office` and `browser`: LibreOffice renders the client
# report to PDF as a client would print it and poppler reads the PDF back (pages, where each word
# landed); Playwright drives Debian's chromium through the Dagster UI (its own browser download is
# never used). Installed when missing where apt-get can: as root (as CI runs) or with sudo that asks
# no password; elsewhere those tests skip. No recommends: in particular no Calibri-compatible font,
# so the report is checked with a wider fallback font. redis-server (the Celery broker) and
# postgresql (the Dagster instance) are what the test marked `distributed` starts on loopback.
debian_packages=(libreoffice-calc-nogui poppler-utils chromium redis-server postgresql)
missing=()
for package in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then
    as_root=$([ "$(id -u)" = 0 ] || echo "sudo -n")
    $as_root apt-get update -q >/dev/null
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup.sh: ${missing[*]} not installed (needs apt-get, as root or with sudo); the tests marked 'office', 'browser' and 'distributed' will skip." >&2
  fi
fi
