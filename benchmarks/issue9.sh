#!/usr/bin/env bash
# Every target of issue 9, measured in one go on an otherwise idle machine (root, no
# Docker): the fan-out at N = 30, 100, 200 and 1,000 against the floor, pyinfra and
# ansible-core, start-up, the executor's CPU on the host, and serve's warm connections.
# Writes benchmarks/results/issue9-<UTC date>.{log,json} and prints the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=$(date -u +%Y-%m-%dT%H%M)
out=benchmarks/results/issue9-$stamp
unset PYTHONDONTWRITEBYTECODE  # measure hostplane as a user runs it: bytecode cached
.venv/bin/python -m compileall -q control_server host_executor >/dev/null
{
  echo "# $(date -u) $(git rev-parse --short HEAD) load: $(cut -d' ' -f1-3 /proc/loadavg)"
  .venv/bin/python benchmarks/fanout.py --loopback -n "${HOSTS:-30,100,200}" \
      --scale "${SCALE:-1000}" --scale-tools floor-1,exec,exec-norecord,pyinfra-1 \
      --tools floor-1,exec,exec-norecord,pyinfra-1,ansible-1,floor,hostplane,hostplane-api,pyinfra,ansible \
      --rounds "${ROUNDS:-3}" --json "$out.json"
  echo "# executor on the host: $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg)"
  .venv/bin/python benchmarks/executor_cpu.py --runs 20 --before ''
  echo "# serve: $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg)"
  .venv/bin/python benchmarks/serve_latency.py --hosts 30 --seconds 20 --clients 30 --samples 200
  echo "# end $(date -u) load: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$out.log"
