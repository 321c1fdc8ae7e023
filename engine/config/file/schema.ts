// The JSON Schema of the YAML config file (`bowline proxy --config FILE`) and the TypeScript shape
// of a document that passed it. Keep the two in step: yaml-config.ts trusts the types after
// validation. Every object is closed (additionalProperties: false) so that a misspelt key is an
// error instead of a silently ignored setting. A `description` beside a `pattern` or a `required`
// is shown to the user when that check fails ("must be <description>", "missing (<description>)").

import type { RetryCondition, UpstreamProtocol } from '../snapshot';

export interface PolicyConfig {
  defaultPolicy?: 'all-unauthenticated' | 'all-authenticated' | 'cluster-authenticated' | 'deny';
  clusterNetworks?: string[];
  audit?: boolean;
  servers?: { name: string; port?: number; listener?: string; mcp?: boolean }[];
  authorizationPolicies?: {
    name: string;
    targetRef: { kind: 'Server' | 'HTTPRoute'; name: string };
    meshTLS?: { identities: string[] };
    network?: { networks: { cidr: string; except?: string[] }[] };
  }[];
}

export interface McpConfig {
  inspectAll?: boolean;
  maxBodyBytes?: number;
  oversizedBody?: 'reject' | 'pass';
  maxNames?: number;
  audit?: boolean;
  policies?: {
    name: string;
    targetRef: { kind: 'Server' | 'HTTPRoute'; name: string };
    rules: {
      name?: string;
      meshTLS?: { identities: string[] };
      network?: { networks: { cidr: string; except?: string[] }[] };
      tools?: string[];
      resources?: string[];
      prompts?: string[];
    }[];
  }[];
}

export interface ConfigFile {
  proxy?: ProxyConfig;
  policy?: PolicyConfig;
  mcp?: McpConfig;
  listeners: ListenerConfig[];
  services: ServiceConfig[];
  routes?: RouteConfig[];
}

export interface ProxyConfig {
  zone?: string;
  zoneTransferUsdPerGb?: number;
  identity?: { certificateChainFile: string; privateKeyFile: string; trustBundleFile: string };
  http?: {
    maxHeadBytes?: number;
    headTimeoutMs?: number;
    keepAliveTimeoutMs?: number;
    responseTimeoutMs?: number;
  };
  opaquePorts?: number[];
}

export interface ListenerConfig {
  name: string;
  address: string;
  direction?: 'inbound' | 'outbound';
  protocol?: 'detect' | 'http1' | 'opaque';
  routes?: string[];
  defaultService?: string;
  detectTimeoutMs?: number;
  /** Connections arrive redirected by iptables (`bowline init`) and go where they were going. */
  originalDst?: boolean;
  /** Every HTTP request on this listener is MCP. */
  mcp?: boolean;
}

export interface RetryConfig {
  on?: RetryCondition[];
  statusCodes?: number[];
  maxRetries?: number;
  backoff?: { baseMs?: number; maxMs?: number };
  maxBodyBytes?: number;
  nonIdempotent?: boolean;
  budget?: { ratio?: number; minPerSecond?: number; windowMs?: number };
}

/** Timeouts that a route, a rule or a service may set. */
export interface TimeoutFields {
  responseTimeoutMs?: number;
  idleTimeoutMs?: number;
}

export interface ServiceConfig extends TimeoutFields {
  name: string;
  endpoints: { address: string; zone?: string; weight?: number; identity?: string }[];
  /** The SPIFFE ID of every endpoint that names none (meshed: mutual TLS). */
  identity?: string;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  balancer?: 'p2c-ewma' | 'round-robin' | 'least-request';
  /** How requests reach the endpoints (default 'auto': the version the client spoke). */
  protocol?: UpstreamProtocol;
  pool?: { maxIdlePerEndpoint?: number; idleTimeoutMs?: number };
  zoneLocality?: { enabled?: boolean; highLoad?: number; lowLoad?: number; loadWindowMs?: number };
  failureAccrual?: {
    mode?: 'consecutive' | 'success-rate' | 'off';
    consecutiveFailures?: number;
    minBackoffMs?: number;
    maxBackoffMs?: number;
    jitter?: number;
    maxEjectionPercent?: number;
    successRate?: { threshold?: number; minRequests?: number; window?: number };
  };
  failurePenalty?: { enabled?: boolean; statuses?: number[]; latencyMs?: number; maxLatencyMs?: number };
  queue?: { maxInFlight?: number; capacity?: number; failFastMs?: number };
  retry?: RetryConfig;
}

export interface MatchConfig {
  path?: { type?: 'PathPrefix' | 'Exact'; value: string };
  headers?: { name: string; value?: string; type?: 'Exact' | 'RegularExpression' | 'Present' }[];
  method?: string;
}

export interface BackendRefConfig {
  name: string;
  weight?: number;
}

export interface RuleConfig extends TimeoutFields {
  name?: string;
  matches?: MatchConfig[];
  backendRefs: BackendRefConfig[];
  timeoutMs?: number;
  retry?: RetryConfig;
}

/** Either `matches` + `backendRefs` directly, or `rules` (checked in code: the schema keeps errors simple). */
export interface RouteConfig extends TimeoutFields {
  name: string;
  /** The route carries MCP: inspected, counted per tool, authorized by MCP policies. */
  mcp?: boolean;
  hostnames?: string[];
  timeoutMs?: number;
  retry?: RetryConfig;
  matches?: MatchConfig[];
  backendRefs?: BackendRefConfig[];
  rules?: RuleConfig[];
}

const NAME = {
  type: 'string',
  pattern: '^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$',
  description: 'a name of letters, digits, ".", "_" and "-" (starting and ending with a letter or digit)',
} as const;

// A route reference may also name one expanded rule: "<route>/<rule>".
const ROUTE_REF = {
  type: 'string',
  pattern: '^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(/[A-Za-z0-9._-]+)?$',
  description: 'a route name, or "<route>/<rule>" for one rule of a route',
} as const;

// "HOST:PORT" or "[IPV6]:PORT"; parsed and range-checked in code, which gives better messages.
const ADDRESS = { type: 'string', minLength: 1 } as const;
const DURATION_MS = { type: 'integer', minimum: 0 } as const;
const WEIGHT = { type: 'integer', minimum: 0 } as const;
const PORT = { type: 'integer', minimum: 1, maximum: 65535 } as const;
const TOKEN = {
  type: 'string',
  pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
  description: 'a token (letters, digits and !#$%&\'*+.^_`|~-, no spaces)',
} as const;

const SPIFFE_ID = {
  type: 'string',
  pattern: '^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._~!$&\'()*+,;=:@%-]+)+$',
  description: 'a SPIFFE ID (spiffe://trust-domain/path)',
} as const;

const RATIO = { type: 'number', minimum: 0, maximum: 1 } as const;
const STATUS = { type: 'integer', minimum: 100, maximum: 599 } as const;
const COUNT = { type: 'integer', minimum: 0 } as const;

// Envoy's retry_on names: HTTP conditions, then gRPC ones (a grpc-status in the response headers).
const RETRY_CONDITIONS: readonly RetryCondition[] = [
  '5xx',
  'gateway-error',
  'connect-failure',
  'reset',
  'retriable-status-codes',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
];
const UPSTREAM_PROTOCOLS: readonly UpstreamProtocol[] = ['http1', 'h2c', 'auto'];

const RETRY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    on: { type: 'array', items: { enum: RETRY_CONDITIONS } },
    statusCodes: { type: 'array', items: STATUS },
    maxRetries: COUNT,
    backoff: { type: 'object', additionalProperties: false, properties: { baseMs: DURATION_MS, maxMs: DURATION_MS } },
    maxBodyBytes: COUNT,
    nonIdempotent: { type: 'boolean' },
    budget: {
      type: 'object',
      additionalProperties: false,
      properties: { ratio: RATIO, minPerSecond: { type: 'number', minimum: 0 }, windowMs: { type: 'integer', minimum: 1 } },
    },
  },
} as const;

const MATCH = {
  type: 'object',
  additionalProperties: false,
  properties: {
    path: {
      type: 'object',
      additionalProperties: false,
      required: ['value'],
      properties: {
        type: { enum: ['PathPrefix', 'Exact'] },
        value: { type: 'string', pattern: '^/', description: 'a path starting with "/"' },
      },
    },
    headers: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: TOKEN,
          value: { type: 'string' },
          type: { enum: ['Exact', 'RegularExpression', 'Present'] },
        },
        // `value` is needed unless the match only asks for the header to be present.
        if: { type: 'object', required: ['type'], properties: { type: { const: 'Present' } } },
        else: { required: ['value'], description: 'needed unless type is "Present"' },
      },
    },
    method: TOKEN,
  },
} as const;

const BACKEND_REFS = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['name'],
    properties: { name: NAME, weight: WEIGHT },
  },
} as const;

const CIDR = { type: 'string', pattern: '^[0-9a-fA-F:.]+(/[0-9]{1,3})?$', description: 'an address or CIDR (10.0.0.0/8, fd00::/8)' } as const;

/** Linkerd's MeshTLSAuthentication and NetworkAuthentication, as authorization policies and MCP rules name clients. */
const MESH_TLS_AUTHENTICATION = { type: 'object', additionalProperties: false, required: ['identities'], properties: { identities: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } } } } as const;
const NETWORK_AUTHENTICATION = {
  type: 'object',
  additionalProperties: false,
  required: ['networks'],
  properties: { networks: { type: 'array', minItems: 1, items: { type: 'object', additionalProperties: false, required: ['cidr'], properties: { cidr: CIDR, except: { type: 'array', items: CIDR } } } } },
} as const;

const POLICY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    defaultPolicy: { enum: ['all-unauthenticated', 'all-authenticated', 'cluster-authenticated', 'deny'] },
    clusterNetworks: { type: 'array', items: CIDR },
    audit: { type: 'boolean' },
    servers: {
      type: 'array',
      items: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: NAME, port: PORT, listener: NAME, mcp: { type: 'boolean' } } },
    },
    authorizationPolicies: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'targetRef'],
        properties: {
          name: NAME,
          targetRef: { type: 'object', additionalProperties: false, required: ['kind', 'name'], properties: { kind: { enum: ['Server', 'HTTPRoute'] }, name: ROUTE_REF } },
          meshTLS: MESH_TLS_AUTHENTICATION,
          network: NETWORK_AUTHENTICATION,
        },
      },
    },
  },
} as const;

const MCP_NAMES = { type: 'array', items: { type: 'string', minLength: 1 } } as const;

const MCP = {
  type: 'object',
  additionalProperties: false,
  properties: {
    inspectAll: { type: 'boolean' },
    maxBodyBytes: { type: 'integer', minimum: 1 },
    oversizedBody: { enum: ['reject', 'pass'] },
    maxNames: { type: 'integer', minimum: 1 },
    audit: { type: 'boolean' },
    policies: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'targetRef', 'rules'],
        properties: {
          name: NAME,
          targetRef: { type: 'object', additionalProperties: false, required: ['kind', 'name'], properties: { kind: { enum: ['Server', 'HTTPRoute'] }, name: ROUTE_REF } },
          rules: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              properties: {
                name: NAME,
                meshTLS: MESH_TLS_AUTHENTICATION,
                network: NETWORK_AUTHENTICATION,
                tools: MCP_NAMES,
                resources: MCP_NAMES,
                prompts: MCP_NAMES,
              },
            },
          },
        },
      },
    },
  },
} as const;

/** How the schema is compiled (at build time by gen-validator.ts, else at run time). */
export const AJV_OPTIONS = { allErrors: true, verbose: true, strict: true, strictRequired: false } as const;

export const CONFIG_FILE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['listeners', 'services'],
  properties: {
    proxy: {
      type: 'object',
      additionalProperties: false,
      properties: {
        zone: { type: 'string' },
        zoneTransferUsdPerGb: { type: 'number', minimum: 0 },
        identity: {
          type: 'object',
          additionalProperties: false,
          required: ['certificateChainFile', 'privateKeyFile', 'trustBundleFile'],
          properties: { certificateChainFile: { type: 'string', minLength: 1 }, privateKeyFile: { type: 'string', minLength: 1 }, trustBundleFile: { type: 'string', minLength: 1 } },
        },
        http: {
          type: 'object',
          additionalProperties: false,
          properties: {
            maxHeadBytes: { type: 'integer', minimum: 1 },
            headTimeoutMs: DURATION_MS,
            keepAliveTimeoutMs: DURATION_MS,
            responseTimeoutMs: DURATION_MS,
          },
        },
        opaquePorts: { type: 'array', items: PORT },
      },
    },
    listeners: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'address'],
        properties: {
          name: NAME,
          address: ADDRESS,
          direction: { enum: ['inbound', 'outbound'] },
          protocol: { enum: ['detect', 'http1', 'opaque'] },
          routes: { type: 'array', items: ROUTE_REF },
          defaultService: NAME,
          detectTimeoutMs: DURATION_MS,
          originalDst: { type: 'boolean' },
          mcp: { type: 'boolean' },
        },
      },
    },
    services: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'endpoints'],
        properties: {
          name: NAME,
          endpoints: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['address'],
              properties: { address: ADDRESS, zone: { type: 'string' }, weight: WEIGHT, identity: SPIFFE_ID },
            },
          },
          identity: SPIFFE_ID,
          connectTimeoutMs: DURATION_MS,
          requestTimeoutMs: DURATION_MS,
          responseTimeoutMs: DURATION_MS,
          idleTimeoutMs: DURATION_MS,
          balancer: { type: 'string', enum: ['p2c-ewma', 'round-robin', 'least-request'] },
          protocol: { type: 'string', enum: UPSTREAM_PROTOCOLS },
          zoneLocality: {
            type: 'object',
            additionalProperties: false,
            properties: {
              enabled: { type: 'boolean' },
              highLoad: { type: 'number', exclusiveMinimum: 0 },
              lowLoad: { type: 'number', minimum: 0 },
              loadWindowMs: { type: 'integer', minimum: 1 },
            },
          },
          failureAccrual: {
            type: 'object',
            additionalProperties: false,
            properties: {
              mode: { enum: ['consecutive', 'success-rate', 'off'] },
              consecutiveFailures: { type: 'integer', minimum: 1 },
              minBackoffMs: DURATION_MS,
              maxBackoffMs: DURATION_MS,
              jitter: RATIO,
              maxEjectionPercent: { type: 'number', minimum: 0, maximum: 100 },
              successRate: {
                type: 'object',
                additionalProperties: false,
                properties: { threshold: RATIO, minRequests: { type: 'integer', minimum: 1 }, window: { type: 'integer', minimum: 1 } },
              },
            },
          },
          failurePenalty: {
            type: 'object',
            additionalProperties: false,
            properties: { enabled: { type: 'boolean' }, statuses: { type: 'array', items: STATUS }, latencyMs: DURATION_MS, maxLatencyMs: DURATION_MS },
          },
          queue: {
            type: 'object',
            additionalProperties: false,
            properties: { maxInFlight: { type: 'integer', minimum: 1 }, capacity: COUNT, failFastMs: DURATION_MS },
          },
          retry: RETRY,
          pool: {
            type: 'object',
            additionalProperties: false,
            properties: {
              maxIdlePerEndpoint: { type: 'integer', minimum: 0 },
              idleTimeoutMs: DURATION_MS,
            },
          },
        },
      },
    },
    routes: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: NAME,
          mcp: { type: 'boolean' },
          hostnames: { type: 'array', items: { type: 'string', minLength: 1 } },
          timeoutMs: DURATION_MS,
          responseTimeoutMs: DURATION_MS,
          idleTimeoutMs: DURATION_MS,
          retry: RETRY,
          matches: { type: 'array', items: MATCH },
          backendRefs: BACKEND_REFS,
          rules: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['backendRefs'],
              properties: {
                name: NAME,
                matches: { type: 'array', items: MATCH },
                backendRefs: BACKEND_REFS,
                timeoutMs: DURATION_MS,
                responseTimeoutMs: DURATION_MS,
                idleTimeoutMs: DURATION_MS,
                retry: RETRY,
              },
            },
          },
        },
      },
    },
    policy: POLICY,
    mcp: MCP,

  },
} as const;
