// The parts of Envoy's v3 resources that Bowline reads, as protobufjs decodes them (proto field
// names, enums as names, int64 as strings, google.protobuf.Any as { type_url, value }). Hand-written
// and partial: a field not listed here is one the translation does not use.

import type { StructObject } from '../common/struct';

export interface Any {
  type_url?: string;
  value?: Uint8Array;
}

export interface Duration {
  seconds?: string | number;
  nanos?: number;
}

export interface U32 {
  value?: number;
}

export interface Metadata {
  filter_metadata?: Record<string, StructObject>;
}

export interface SocketAddress {
  address?: string;
  port_value?: number;
  named_port?: string;
}

export interface Address {
  socket_address?: SocketAddress;
  pipe?: unknown;
}

export interface Filter {
  name?: string;
  typed_config?: Any;
}

export interface FilterChain {
  filter_chain_match?: Record<string, unknown>;
  filters?: Filter[];
  name?: string;
  transport_socket?: unknown;
}

export interface Listener {
  name?: string;
  address?: Address;
  filter_chains?: FilterChain[];
  default_filter_chain?: FilterChain;
  traffic_direction?: string;
  api_listener?: unknown;
  use_original_dst?: { value?: boolean };
  bind_to_port?: { value?: boolean };
  metadata?: Metadata;
}

export interface HttpConnectionManager {
  rds?: { route_config_name?: string; config_source?: Record<string, unknown> };
  route_config?: RouteConfiguration;
  scoped_routes?: unknown;
  stream_idle_timeout?: Duration;
  request_timeout?: Duration;
}

export interface TcpProxy {
  cluster?: string;
  weighted_clusters?: { clusters?: { name?: string; weight?: number }[] };
  idle_timeout?: Duration;
}

export interface StringMatcher {
  exact?: string;
  prefix?: string;
  suffix?: string;
  contains?: string;
  safe_regex?: { regex?: string };
  ignore_case?: boolean;
}

export interface HeaderMatcher {
  name?: string;
  exact_match?: string;
  safe_regex_match?: { regex?: string };
  present_match?: boolean;
  prefix_match?: string;
  suffix_match?: string;
  string_match?: StringMatcher;
  invert_match?: boolean;
}

export interface RouteMatch {
  prefix?: string;
  path?: string;
  safe_regex?: { regex?: string };
  path_separated_prefix?: string;
  path_match_policy?: unknown;
  headers?: HeaderMatcher[];
  query_parameters?: unknown[];
  case_sensitive?: { value?: boolean };
  grpc?: unknown;
}

export interface RetryPolicy {
  retry_on?: string;
  num_retries?: U32;
  per_try_timeout?: Duration;
  retry_back_off?: { base_interval?: Duration; max_interval?: Duration };
  retriable_status_codes?: number[];
}

export interface RouteAction {
  cluster?: string;
  weighted_clusters?: { clusters?: { name?: string; weight?: U32 }[] };
  cluster_header?: string;
  cluster_specifier_plugin?: string;
  timeout?: Duration;
  idle_timeout?: Duration;
  retry_policy?: RetryPolicy;
}

export interface Route {
  name?: string;
  match?: RouteMatch;
  route?: RouteAction;
  redirect?: unknown;
  direct_response?: { status?: number };
  non_forwarding_action?: unknown;
  metadata?: Metadata;
}

export interface VirtualHost {
  name?: string;
  domains?: string[];
  routes?: Route[];
  retry_policy?: RetryPolicy;
}

export interface RouteConfiguration {
  name?: string;
  virtual_hosts?: VirtualHost[];
}

export interface Cluster {
  name?: string;
  type?: string;
  cluster_type?: unknown;
  eds_cluster_config?: { service_name?: string };
  load_assignment?: ClusterLoadAssignment;
  connect_timeout?: Duration;
  lb_policy?: string;
  load_balancing_policy?: { policies?: { typed_extension_config?: { name?: string; typed_config?: Any } }[] };
  circuit_breakers?: { thresholds?: { priority?: string; max_requests?: U32; max_pending_requests?: U32 }[] };
  outlier_detection?: {
    consecutive_5xx?: U32;
    base_ejection_time?: Duration;
    max_ejection_time?: Duration;
    max_ejection_percent?: U32;
    enforcing_consecutive_5xx?: U32;
    failure_percentage_threshold?: U32;
    enforcing_failure_percentage?: U32;
    failure_percentage_request_volume?: U32;
  };
  metadata?: Metadata;
  /** Extension options by name; HTTP's is an Any of HttpProtocolOptions. */
  typed_extension_protocol_options?: Record<string, Any>;
  /** Deprecated (HttpProtocolOptions replaces them): HTTP/2 options mean HTTP/2 upstream ... */
  http2_protocol_options?: unknown;
  http_protocol_options?: unknown;
  /** ... unless USE_DOWNSTREAM_PROTOCOL (default USE_CONFIGURED_PROTOCOL). */
  protocol_selection?: string;
}

/** envoy.extensions.upstreams.http.v3.HttpProtocolOptions: which HTTP version goes upstream. */
export interface HttpProtocolOptions {
  common_http_protocol_options?: Record<string, unknown>;
  upstream_http_protocol_options?: Record<string, unknown>;
  explicit_http_config?: { http_protocol_options?: unknown; http2_protocol_options?: unknown; http3_protocol_options?: unknown };
  use_downstream_protocol_config?: { http_protocol_options?: unknown; http2_protocol_options?: unknown; http3_protocol_options?: unknown };
  auto_config?: { http_protocol_options?: unknown; http2_protocol_options?: unknown; http3_protocol_options?: unknown; alternate_protocols_cache_options?: unknown };
  http_filters?: { name?: string }[];
  header_validation_config?: unknown;
}

export interface LbEndpoint {
  endpoint?: { address?: Address };
  health_status?: string;
  load_balancing_weight?: U32;
  metadata?: Metadata;
}

export interface LocalityLbEndpoints {
  locality?: { region?: string; zone?: string; sub_zone?: string };
  lb_endpoints?: LbEndpoint[];
  load_balancing_weight?: U32;
  priority?: number;
}

export interface ClusterLoadAssignment {
  cluster_name?: string;
  endpoints?: LocalityLbEndpoints[];
}
