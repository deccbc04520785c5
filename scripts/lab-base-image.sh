#!/usr/bin/env bash
# Build hostplane-lab-base:bookworm with debootstrap + docker import (no registry needed).
# The real script ships inside the package (control_server/lab_assets).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../control_server/lab_assets/base-image.sh" "$@"
