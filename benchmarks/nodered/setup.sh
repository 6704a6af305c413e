#!/usr/bin/env bash
# Installs Node-RED 4.x from the npm registry into benchmarks/.node-red, for the comparison run by
# benchmarks/engine.py --node-red. Needs node and npm on PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$here/.node-red"
cd "$here/.node-red"
npm install --no-audit --no-fund --loglevel=error node-red@4
echo "Node-RED installed: $(node -e 'console.log(require("node-red/package.json").version)')"
