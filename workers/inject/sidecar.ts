// What `bowline inject` adds to a pod: the bowline-init container that redirects the pod's TCP to the
// proxy, the bowline-proxy container, and the volumes they read. Plain objects in Kubernetes' shape,
// built from the injector's options and the pod's bowline.io annotations; patch-pod.ts puts them in.

import { DEFAULT_INTERCEPTION } from '../interception';

export const INIT_CONTAINER = 'bowline-init';
export const PROXY_CONTAINER = 'bowline-proxy';
export const TOKEN_VOLUME = 'bowline-token';
export const BOOTSTRAP_VOLUME = 'bowline-bootstrap';
/** The ConfigMap with the proxy's bootstrap; one per workload namespace (docker/k8s/sidecar/bootstrap.yaml). */
export const BOOTSTRAP_CONFIGMAP = 'bowline-bootstrap';

export const ANNOTATION = {
  inject: 'bowline.io/inject',
  injected: 'bowline.io/injected',
  skipInboundPorts: 'bowline.io/skip-inbound-ports',
  skipOutboundPorts: 'bowline.io/skip-outbound-ports',
  opaquePorts: 'bowline.io/opaque-ports',
} as const;

export const PROXY_UID = 2102;
export const ADMIN_PORT = 4191;
const TOKEN_DIR = '/var/run/secrets/tokens';
const BOOTSTRAP_DIR = '/etc/bowline';
/** The audience the control plane asks TokenReview about (`bowline control --token-audience`). */
export const TOKEN_AUDIENCE = 'bowline';
/** A day, like the leaf certificate; the kubelet refreshes the file at 80 % of it, the proxy re-reads it at each renewal. */
const TOKEN_TTL_S = 86400;
/**
 * On a pod's deletion every container gets SIGTERM at once, while other proxies and kube-proxy still
 * send it new connections for a few seconds. The proxy waits this long before its own SIGTERM (and
 * the app, stopping meanwhile, can still call out through it), then drains for its default 10 s.
 * The grace period counts both.
 */
export const PRE_STOP_SLEEP_S = 5;
const DRAIN_GRACE_S = 10;
/** The pod's terminationGracePeriodSeconds is raised to this when lower, so the drain is not cut short. */
export const MIN_TERMINATION_GRACE_S = PRE_STOP_SLEEP_S + DRAIN_GRACE_S;

export interface ProxyResources {
  cpuRequest: string;
  memoryRequest: string;
  /** '' for none. */
  cpuLimit: string;
  /** '' for none. */
  memoryLimit: string;
}

export interface InjectOptions {
  /** Image of both containers; its entrypoint is the `bowline` command. */
  image: string;
  resources: ProxyResources;
  /** The proxy's --workers: a sidecar gets a share of a core, not the node's every core. */
  proxyWorkers: number;
  /**
   * The proxy as a Kubernetes sidecar container (an init container with restartPolicy Always,
   * Kubernetes 1.29+): it starts, and must be ready, before the app's containers, and stops after
   * them. Always used for Jobs and CronJobs, whose pods would otherwise never complete.
   */
  nativeSidecar: boolean;
}

/**
 * Defaults: a tenth of a core and 128 MiB requested (a proxy with one worker on xDS was measured at
 * 72 MB resident when idle), a 256 MiB memory limit, and no CPU limit: throttling a proxy adds latency to every request it
 * carries, which is worse than borrowing idle CPU.
 */
export function defaultInjectOptions(version: string): InjectOptions {
  return {
    image: `ghcr.io/bowline-mesh/bowline:${version}`,
    resources: { cpuRequest: '100m', memoryRequest: '128Mi', cpuLimit: '', memoryLimit: '256Mi' },
    proxyWorkers: 1,
    nativeSidecar: false,
  };
}

/** A Kubernetes resource quantity ("100m", "128Mi", "0.5", "1e3"), checked here rather than by a failing apply. */
export function isQuantity(s: string): boolean {
  return /^\+?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+|[numkMGTPE]|[KMGTPE]i)?$/.test(s);
}

/** What one pod's annotations ask for. */
export interface PodSettings {
  skipInboundPorts: number[];
  skipOutboundPorts: number[];
  opaquePorts: number[];
  /** The proxy as a native sidecar (see InjectOptions.nativeSidecar). */
  native: boolean;
}

/** A comma list of ports ("25, 3306,5432"); throws with the annotation's name on anything else. */
export function parsePortList(annotation: string, value: string): number[] {
  const ports: number[] = [];
  for (const part of value.split(',')) {
    const p = part.trim();
    if (p === '') continue;
    const n = /^\d{1,5}$/.test(p) ? Number(p) : NaN;
    if (!(n >= 1 && n <= 65535)) throw new Error(`annotation ${annotation}: "${p}" is not a port (1-65535)`);
    if (!ports.includes(n)) ports.push(n);
  }
  return ports;
}

function resources(r: ProxyResources): Record<string, unknown> {
  const limits: Record<string, string> = {};
  if (r.cpuLimit !== '') limits['cpu'] = r.cpuLimit;
  if (r.memoryLimit !== '') limits['memory'] = r.memoryLimit;
  return { requests: { cpu: r.cpuRequest, memory: r.memoryRequest }, ...(Object.keys(limits).length > 0 ? { limits } : {}) };
}

/** The init container: `bowline init` as root with the two capabilities iptables needs, nothing more. */
export function initContainer(o: InjectOptions, s: PodSettings): Record<string, unknown> {
  const args = ['init', '--proxy-uid', String(PROXY_UID)];
  // The flag replaces bowline init's own list, so the defaults (the admin port) stay in it.
  if (s.skipInboundPorts.length > 0) args.push('--skip-inbound-ports', [...new Set([...DEFAULT_INTERCEPTION.skipInboundPorts, ...s.skipInboundPorts])].join(','));
  if (s.skipOutboundPorts.length > 0) args.push('--skip-outbound-ports', [...new Set([...DEFAULT_INTERCEPTION.skipOutboundPorts, ...s.skipOutboundPorts])].join(','));
  return {
    name: INIT_CONTAINER,
    image: o.image,
    args,
    resources: resources(o.resources),
    securityContext: {
      // Set explicitly: a pod-level runAsNonRoot or runAsUser would otherwise stop iptables.
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'] },
    },
  };
}

/** The proxy: config over xDS from the control plane named in the bootstrap, identity from the projected token. */
export function proxyContainer(o: InjectOptions, s: PodSettings): Record<string, unknown> {
  const env: Record<string, unknown>[] = [
    // The pod's zone for zone-local balancing. Pods carry their node's topology labels where the
    // PodTopologyLabelsAdmission plugin runs (Kubernetes 1.33+); elsewhere this is empty and the
    // proxy has no zone (no zone preference), as without the variable.
    { name: 'BOWLINE_ZONE', valueFrom: { fieldRef: { fieldPath: "metadata.labels['topology.kubernetes.io/zone']" } } },
  ];
  // No proxy flag takes these yet: they travel as the environment for when the proxy reads it.
  if (s.opaquePorts.length > 0) env.push({ name: 'BOWLINE_OPAQUE_PORTS', value: s.opaquePorts.join(',') });
  return {
    name: PROXY_CONTAINER,
    image: o.image,
    // A native sidecar is stopped only after the app's containers have exited; the classic one
    // waits before its SIGTERM (see PRE_STOP_SLEEP_S).
    ...(s.native ? { restartPolicy: 'Always' } : {}),
    args: [
      'proxy',
      '--bootstrap', `${BOOTSTRAP_DIR}/bootstrap.yaml`,
      '--identity-token', `${TOKEN_DIR}/${TOKEN_VOLUME}`,
      // On every address: the kubelet probes it from the node (bowline init leaves the port alone).
      '--admin', `0.0.0.0:${ADMIN_PORT}`,
      '--workers', String(o.proxyWorkers),
    ],
    ports: [
      { name: 'bowline-inbound', containerPort: DEFAULT_INTERCEPTION.inboundPort },
      { name: 'bowline-outbound', containerPort: DEFAULT_INTERCEPTION.outboundPort },
      // Not "admin": port names are unique across a pod's containers and apps often use that one.
      { name: 'bowline-admin', containerPort: ADMIN_PORT },
    ],
    env,
    resources: resources(o.resources),
    securityContext: {
      runAsUser: PROXY_UID,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    },
    ...(s.native ? {} : { lifecycle: { preStop: { sleep: { seconds: PRE_STOP_SLEEP_S } } } }),
    // The admin port answers once the first config is in; /ready also waits for the identity. Up to
    // two minutes for both before the kubelet restarts the proxy; a native sidecar also holds the
    // app's containers until then, so the app's first connections find the proxy.
    startupProbe: { httpGet: { path: '/ready', port: ADMIN_PORT }, periodSeconds: 1, failureThreshold: 120 },
    readinessProbe: { httpGet: { path: '/ready', port: ADMIN_PORT }, periodSeconds: 5 },
    livenessProbe: { httpGet: { path: '/live', port: ADMIN_PORT }, periodSeconds: 10 },
    volumeMounts: [
      { name: BOOTSTRAP_VOLUME, mountPath: BOOTSTRAP_DIR, readOnly: true },
      { name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true },
    ],
  };
}

/** The bootstrap ConfigMap, and a token for the control plane's TokenReview (audience "bowline", not the API server's). */
export function sidecarVolumes(): Record<string, unknown>[] {
  return [
    { name: BOOTSTRAP_VOLUME, configMap: { name: BOOTSTRAP_CONFIGMAP } },
    { name: TOKEN_VOLUME, projected: { sources: [{ serviceAccountToken: { path: TOKEN_VOLUME, audience: TOKEN_AUDIENCE, expirationSeconds: TOKEN_TTL_S } }] } },
  ];
}
