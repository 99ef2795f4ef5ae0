#!/usr/bin/env bash
# Recompiles CheckpointAnchor.sol into CheckpointAnchor.abi and .bin, the
# artifacts the Go package embeds. Needs Node.js and the npm registry;
# the compiler version is pinned by the pragma and here.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm install --silent --no-audit --no-fund solc@0.8.37 >/dev/null)
"$tmp/node_modules/.bin/solcjs" --bin --abi --optimize -o "$tmp/out" CheckpointAnchor.sol
cp "$tmp/out/CheckpointAnchor_sol_CheckpointAnchor.abi" CheckpointAnchor.abi
cp "$tmp/out/CheckpointAnchor_sol_CheckpointAnchor.bin" CheckpointAnchor.bin
