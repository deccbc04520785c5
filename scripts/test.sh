#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine (as root): install what it needs,
# start the Docker engine for the lab of real SSH hosts, then lint, type-check and test.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/bootstrap.sh
./scripts/docker-engine.sh

.venv/bin/ruff check control_server host_executor tests benchmarks vagrant
.venv/bin/mypy control_server host_executor
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
