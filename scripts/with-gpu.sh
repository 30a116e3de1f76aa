#!/usr/bin/env bash
# Runs a command with a WebGPU-capable environment: Chromium (for SwiftShader and browser runs)
# and Dawn's Vulkan driver settings from gpu-env.sh.
set -euo pipefail
source "$(dirname "$0")/gpu-env.sh"
exec "$@"
