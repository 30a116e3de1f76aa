#!/usr/bin/env bash
# npm test: type-check, lint, then vitest's Node project (Dawn on SwiftShader) and browser
# project (headless Debian Chromium, SwiftShader, dedicated worker).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh

echo "== type-check (tsc)"
npx tsc --noEmit -p tsconfig.json
echo "== lint and format (biome)"
npx biome check .
echo "== tests (vitest: node + browser)"
npx vitest run "$@"
