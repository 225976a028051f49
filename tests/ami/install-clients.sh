#!/usr/bin/env bash
# Installs the AMI client libraries that crates/carillon/tests/ami.rs
# drives, under target/ami-clients/ (or $CARILLON_AMI_CLIENTS):
#   venv/                      python3 venv with panoramisk (PyPI)
#   node/node_modules/         asterisk-manager (npm)
# Needs the network (tests/run.sh calls it before entering the
# loopback-only namespace); does nothing when both are already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest="${CARILLON_AMI_CLIENTS:-$PWD/target/ami-clients}"
mkdir -p "$dest"
if [ ! -x "$dest/venv/bin/python" ] || ! "$dest/venv/bin/python" -c 'import panoramisk' 2>/dev/null; then
  rm -rf "$dest/venv"
  python3 -m venv "$dest/venv"
  "$dest/venv/bin/pip" install --quiet --disable-pip-version-check 'panoramisk==1.4'
fi
if [ ! -d "$dest/node/node_modules/asterisk-manager" ]; then
  mkdir -p "$dest/node"
  (cd "$dest/node" && npm install --silent --no-audit --no-fund --no-save 'asterisk-manager@0.2.0' >/dev/null)
fi
echo "AMI clients: $("$dest/venv/bin/python" -c 'import importlib.metadata as m; print("panoramisk", m.version("panoramisk"))'), asterisk-manager $(node -p "require('$dest/node/node_modules/asterisk-manager/package.json').version")"
