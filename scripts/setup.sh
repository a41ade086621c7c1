#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian machine: system packages, a virtual environment in .venv,
# and the project installed into it. When everything is already in place it finishes in a second or two.
#   bash scripts/setup.sh          (called by `make demo`, `make test` and .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: festival singing voices, espeak-ng, fluidsynth and two General MIDI soundfonts for the
# procedural corpus (reference/libraries.md §1.2, §3.4). Read from packages.txt so the Hugging Face Space
# installs the same list; packages-test.txt adds what only the tests need (a headless browser).
apt_packages=$(cat packages.txt packages-test.txt | grep -vE '^\s*(#|$)' | tr '\n' ' ')
missing=()
for pkg in $apt_packages; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Python: a venv with the CPU build of torch installed first (a plain `torch` would resolve to a multi-GB
# CUDA build, libraries.md §1.1), then the project with its test extra. A stamp keyed on pyproject.toml
# skips pip entirely when nothing changed.
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q "torch==2.13.0"
  .venv/bin/pip install -q -e ".[test]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
echo "setup: ready (.venv)"
