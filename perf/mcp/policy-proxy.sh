#!/usr/bin/env bash
# Bowline for the MCP benchmark with inspection and authorization on: a route marked `mcp: true` and a
# deny-by-default MCP policy granting the benchmark's tools to clients on 127.0.0.0/8.
#   bash perf/mcp/policy-proxy.sh PORT UPSTREAM_PORT ADMIN_PORT
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CFG=${TMPDIR:-/tmp}/bowline-mcp-bench-$1.yaml
cat >"$CFG" <<YAML
listeners:
  - { name: mcp, address: 127.0.0.1:$1, routes: [tools] }
services:
  - { name: server, endpoints: [{ address: 127.0.0.1:$2 }] }
routes:
  - { name: tools, mcp: true, backendRefs: [{ name: server }] }
mcp:
  policies:
    - name: bench
      targetRef: { kind: HTTPRoute, name: tools }
      rules:
        - network: { networks: [{ cidr: 127.0.0.0/8 }] }
          tools: [echo, first_event]
YAML
exec node "$REPO/dist/bin/bowline.js" proxy --config "$CFG" --workers 1 --admin "127.0.0.1:$3"
