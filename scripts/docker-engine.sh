#!/usr/bin/env bash
# Start (installing if needed) the Docker engine for the hostplane lab.
# The real script ships inside the package (control_server/lab_assets) so that
# `hostplane lab up` finds it when installed from a wheel; this is the repo entry point.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../control_server/lab_assets/docker-engine.sh" "$@"
