// The xDS v3 resource types Bowline speaks, by type URL, and their message names.

export const TYPE_PREFIX = 'type.googleapis.com/';

export const LISTENER = 'envoy.config.listener.v3.Listener';
export const ROUTE_CONFIGURATION = 'envoy.config.route.v3.RouteConfiguration';
export const CLUSTER = 'envoy.config.cluster.v3.Cluster';
export const CLUSTER_LOAD_ASSIGNMENT = 'envoy.config.endpoint.v3.ClusterLoadAssignment';
export const SECRET = 'envoy.extensions.transport_sockets.tls.v3.Secret';
export const HTTP_CONNECTION_MANAGER = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const TCP_PROXY = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
export const ROUTER = 'envoy.extensions.filters.http.router.v3.Router';
/** A cluster's upstream HTTP version and options, in typed_extension_protocol_options under this name. */
export const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

export const LDS_TYPE = TYPE_PREFIX + LISTENER;
export const RDS_TYPE = TYPE_PREFIX + ROUTE_CONFIGURATION;
export const CDS_TYPE = TYPE_PREFIX + CLUSTER;
export const EDS_TYPE = TYPE_PREFIX + CLUSTER_LOAD_ASSIGNMENT;
export const SDS_TYPE = TYPE_PREFIX + SECRET;

/** Types in the order a sender must make them available (make-before-break): clusters before their endpoints, listeners before their routes. */
export const TYPE_ORDER = [CDS_TYPE, EDS_TYPE, LDS_TYPE, RDS_TYPE, SDS_TYPE] as const;

export type ResourceType = (typeof TYPE_ORDER)[number];

export function isResourceType(url: string): url is ResourceType {
  return (TYPE_ORDER as readonly string[]).includes(url);
}

/** A short name for logs and metric labels. */
export function shortType(url: string): string {
  switch (url) {
    case LDS_TYPE:
      return 'lds';
    case RDS_TYPE:
      return 'rds';
    case CDS_TYPE:
      return 'cds';
    case EDS_TYPE:
      return 'eds';
    case SDS_TYPE:
      return 'sds';
    default:
      return 'unknown';
  }
}
