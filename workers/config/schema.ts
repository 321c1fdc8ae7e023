// The JSON Schema of the YAML config file (`bowline proxy --config FILE`) and the TypeScript shape
// of a document that passed it. Keep the two in step: yaml-config.ts trusts the types after
// validation. Every object is closed (additionalProperties: false) so that a misspelt key is an
// error instead of a silently ignored setting. A `description` beside a `pattern` or a `required`
// is shown to the user when that check fails ("must be <description>", "missing (<description>)").

export interface ConfigFile {
  proxy?: ProxyConfig;
  listeners: ListenerConfig[];
  services: ServiceConfig[];
  routes?: RouteConfig[];
}

export interface ProxyConfig {
  zone?: string;
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
}

export interface ServiceConfig {
  name: string;
  endpoints: { address: string; zone?: string; weight?: number }[];
  connectTimeoutMs?: number;
  balancer?: 'p2c-ewma' | 'round-robin';
  pool?: { maxIdlePerEndpoint?: number; idleTimeoutMs?: number };
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

export interface RuleConfig {
  name?: string;
  matches?: MatchConfig[];
  backendRefs: BackendRefConfig[];
  timeoutMs?: number;
}

/** Either `matches` + `backendRefs` directly, or `rules` (checked in code: the schema keeps errors simple). */
export interface RouteConfig {
  name: string;
  hostnames?: string[];
  timeoutMs?: number;
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
              properties: { address: ADDRESS, zone: { type: 'string' }, weight: WEIGHT },
            },
          },
          connectTimeoutMs: DURATION_MS,
          balancer: { type: 'string', enum: ['p2c-ewma', 'round-robin'] },
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
          hostnames: { type: 'array', items: { type: 'string', minLength: 1 } },
          timeoutMs: DURATION_MS,
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
              },
            },
          },
        },
      },
    },
  },
} as const;
