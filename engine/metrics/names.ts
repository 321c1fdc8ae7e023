// Names, types and help texts of the engine's named counters and gauges (registry.counter and the
// gauges of a snapshot), in one table, so that the renderer describes every family it prints.

export interface MetricFamily {
  type: 'counter' | 'gauge';
  help: string;
}

export const METRIC_FAMILIES = {
  retry_requests_total: { type: 'counter', help: 'Retries sent, by route (or service when no route set the policy) and the failure that caused them.' },
  retry_budget_exhausted_total: { type: 'counter', help: 'Retries not sent because the retry budget was spent.' },
  retry_limit_exceeded_total: { type: 'counter', help: 'Requests that failed after their last allowed retry.' },
  balancer_ejections_total: { type: 'counter', help: 'Endpoints taken out of rotation by failure accrual (including failed probes).' },
  balancer_restorations_total: { type: 'counter', help: 'Endpoints back in rotation after a successful probe.' },
  balancer_endpoints: { type: 'gauge', help: 'Endpoints of a service per worker, by state (ready or ejected).' },
  balancer_zones_spilled: { type: 'gauge', help: 'Other zones in use beside the local one (zone-local routing), summed over workers.' },
  balancer_zone_load: { type: 'gauge', help: 'Averaged requests in flight per ready endpoint of the zones in use, averaged over workers.' },
  balancer_queue_waiting: { type: 'gauge', help: 'Requests waiting in the balancer queue.' },
  balancer_queue_shed_total: { type: 'counter', help: 'Requests refused with 503 because the balancer queue was full.' },
  balancer_queue_failfast_total: { type: 'counter', help: 'Requests failed with 504 after waiting in the balancer queue for the fail-fast timeout.' },
  inbound_http_authz_allow_total: { type: 'counter', help: 'Inbound HTTP requests allowed, by Server and the authorization (or default policy) that allowed them.' },
  inbound_http_authz_deny_total: { type: 'counter', help: 'Inbound HTTP requests denied (403 / PERMISSION_DENIED), by Server; mode="audit" were let through.' },
  inbound_tcp_authz_allow_total: { type: 'counter', help: 'Inbound TCP connections allowed, by Server and authorization.' },
  inbound_tcp_authz_deny_total: { type: 'counter', help: 'Inbound TCP connections denied (closed), by Server; mode="audit" were let through.' },
  tls_handshakes_total: { type: 'counter', help: 'Inbound mesh TLS handshakes, by result (ok, failed: no or untrusted client certificate, not TLS 1.3).' },
  zone_requests_total: { type: 'counter', help: 'Requests sent (attempts), by source and destination zone.' },
  zone_bytes_total: { type: 'counter', help: 'HTTP bytes sent to and received from upstreams, by source and destination zone.' },
  zone_cross_transfer_cost_usd_total: { type: 'counter', help: 'Estimated cost of the bytes that crossed zones (price per GB each way, proxy.zoneTransferUsdPerGb).' },
  mcp_authz_allow_total: { type: 'counter', help: 'MCP calls of tools, resources and prompts allowed by an MCP policy, by policy and rule.' },
  mcp_authz_deny_total: { type: 'counter', help: 'MCP calls denied by MCP policy (answered with JSON-RPC error -32003); mode="audit" were let through.' },
  mcp_list_filtered_total: { type: 'counter', help: 'Entries removed from tools/list, resources/list and prompts/list results by MCP policy.' },
  mcp_uninspected_total: { type: 'counter', help: 'MCP requests passed on without inspection, by reason (oversized body with oversizedBody: pass).' },
  mcp_rejected_total: { type: 'counter', help: 'MCP requests refused before reaching the server, by reason (parse-error, invalid-request, header-mismatch, body-too-large, content-type).' },
  mcp_sessions_opened_total: { type: 'counter', help: 'MCP sessions opened (an initialize answered with an Mcp-Session-Id).' },
  mcp_sessions_active: { type: 'gauge', help: 'MCP sessions open: opened minus ended (DELETE, or the server answering 404 for the session).' },
  mcp_streams_active: { type: 'gauge', help: 'MCP SSE streams open (POST responses and GET streams).' },
} as const satisfies Record<string, MetricFamily>;

export type MetricName = keyof typeof METRIC_FAMILIES;

/** Gauges that are averaged across workers instead of summed. */
export const AVERAGED_GAUGES: ReadonlySet<string> = new Set(['balancer_zone_load']);
