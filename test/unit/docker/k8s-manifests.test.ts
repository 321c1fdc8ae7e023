// The Kubernetes manifests in docker/k8s: every file parses, the control plane has the objects and
// fields it needs, its mesh file is valid in the --config language (and generates xDS), the sidecar
// bootstrap is a valid bootstrap that names the control plane's Service, and the names and paths the
// injector uses agree with them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseConfigText } from '../../../engine/config/file/yaml-config';
import { DEFAULT_INTERCEPTION } from '../../../workers/interception';
import { injectManifests } from '../../../workers/inject/inject';
import { BOOTSTRAP_CONFIGMAP, defaultInjectOptions, TOKEN_AUDIENCE } from '../../../workers/inject/sidecar';
import { parseBootstrap } from '../../../xds/client/bootstrap';
import { LDS_TYPE } from '../../../xds/common/type-urls';
import { generateResources } from '../../../xds/server/generate';

const DIR = resolve(__dirname, '../../../../docker/k8s');

/** Parsed manifests are walked by field path in the assertions: untyped on purpose. */
type Obj = Record<string, any>;

function files(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : f.endsWith('.yaml') ? [join(dir, f)] : []));
}

/** Every object of every file, read as Kubernetes reads YAML (1.1), with its file. */
const objects: { file: string; o: Obj }[] = files(DIR).flatMap((file) =>
  parseAllDocuments(readFileSync(file, 'utf8'), { version: '1.1' }).map((d) => {
    assert.deepEqual(d.errors, [], relative(DIR, file));
    return { file: relative(DIR, file), o: d.toJS() as Obj };
  }),
);

function find(kind: string, name: string): Obj {
  const hit = objects.find(({ o }) => o['kind'] === kind && o['metadata']?.['name'] === name);
  assert.ok(hit, `${kind} ${name} in docker/k8s`);
  return hit.o;
}

/** The value after a flag in an argument list. */
function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
}

const NS = 'bowline-system';

test('every file parses, and every object has apiVersion, kind and a name', () => {
  assert.ok(objects.length >= 8, `${objects.length} objects`);
  for (const { file, o } of objects) {
    assert.equal(typeof o['apiVersion'], 'string', file);
    assert.equal(typeof o['kind'], 'string', file);
    assert.equal(typeof o['metadata']?.['name'], 'string', file);
  }
  // Applied in file-name order: the namespace first.
  assert.equal(objects[0]!.o['kind'], 'Namespace');
  assert.equal(objects[0]!.o['metadata']['name'], NS);
});

test('RBAC: TokenReview create, and read access to Services, EndpointSlices and Pods, bound to the ServiceAccount', () => {
  find('ServiceAccount', 'bowline-control');
  const rules = find('ClusterRole', 'bowline-control')['rules'] as Obj[];
  const allows = (group: string, resource: string, verb: string): boolean => rules.some((r) => r['apiGroups'].includes(group) && r['resources'].includes(resource) && r['verbs'].includes(verb));
  assert.ok(allows('authentication.k8s.io', 'tokenreviews', 'create'));
  for (const verb of ['get', 'list', 'watch']) {
    assert.ok(allows('discovery.k8s.io', 'endpointslices', verb), verb);
    assert.ok(allows('', 'services', verb), verb);
    assert.ok(allows('', 'pods', verb), verb);
  }
  const binding = find('ClusterRoleBinding', 'bowline-control');
  assert.deepEqual(binding['roleRef'], { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'bowline-control' });
  assert.deepEqual(binding['subjects'], [{ kind: 'ServiceAccount', name: 'bowline-control', namespace: NS }]);
});

test('the mesh ConfigMap is a valid mesh with the listeners bowline-init redirects to', () => {
  const cm = find('ConfigMap', 'bowline-mesh');
  assert.equal(cm['metadata']['namespace'], NS);
  const mesh = parseConfigText(cm['data']['mesh.yaml'] as string, 'mesh.yaml', 'test');
  const byName = new Map(mesh.listeners.map((l) => [l.name, l]));
  assert.equal(byName.get('outbound')?.address.port, DEFAULT_INTERCEPTION.outboundPort);
  assert.equal(byName.get('inbound')?.address.port, DEFAULT_INTERCEPTION.inboundPort);
  assert.equal(byName.get('inbound')?.direction, 'inbound');
  for (const l of mesh.listeners) assert.equal(l.originalDst, true, l.name);
  assert.deepEqual([...generateResources(mesh).byType.get(LDS_TYPE)!.keys()].sort(), ['inbound', 'outbound']);
});

test('the control plane Deployment: the flags, mounts, probes and security it needs', () => {
  const dep = find('Deployment', 'bowline-control');
  assert.equal(dep['metadata']['namespace'], NS);
  const pod = dep['spec']['template'];
  assert.deepEqual(dep['spec']['selector']['matchLabels'], { 'app.kubernetes.io/name': 'bowline-control' });
  assert.equal(pod['metadata']['labels']['app.kubernetes.io/name'], 'bowline-control');
  assert.equal(pod['metadata']['annotations']['bowline.io/inject'], 'disabled');
  assert.equal(pod['spec']['serviceAccountName'], 'bowline-control');
  assert.equal(pod['spec']['securityContext']['runAsNonRoot'], true);
  assert.ok(pod['spec']['securityContext']['runAsUser'] > 0);
  const [c] = pod['spec']['containers'] as Obj[];
  const args = c!['args'] as string[];
  assert.equal(args[0], 'control');
  assert.ok(args.includes('--kubernetes-tokens'));
  assert.equal(flag(args, '--token-audience'), TOKEN_AUDIENCE, 'the audience injected proxies project their token for');
  assert.equal(c!['securityContext']['readOnlyRootFilesystem'], true);
  assert.equal(c!['securityContext']['allowPrivilegeEscalation'], false);

  // The mesh file and the CA directory are where the volumes are mounted.
  const mounts = new Map((c!['volumeMounts'] as Obj[]).map((m) => [m['name'], m['mountPath']]));
  const volumes = new Map((pod['spec']['volumes'] as Obj[]).map((v) => [v['name'], v]));
  assert.equal(flag(args, '--config'), `${mounts.get('mesh')}/mesh.yaml`);
  assert.equal(volumes.get('mesh')!['configMap']['name'], 'bowline-mesh');
  assert.equal(flag(args, '--ca-dir'), mounts.get('ca'));
  assert.equal(volumes.get('ca')!['secret']['secretName'], 'bowline-ca');
  assert.equal(volumes.get('ca')!['secret']['defaultMode'], 0o440);

  // Probes on the admin port, xDS on the port the Service targets.
  const ports = new Map((c!['ports'] as Obj[]).map((p) => [p['name'], p['containerPort']]));
  assert.equal(flag(args, '--admin'), `0.0.0.0:${ports.get('admin')}`);
  assert.equal(flag(args, '--listen'), `0.0.0.0:${ports.get('grpc-xds')}`);
  assert.deepEqual(c!['readinessProbe']['httpGet'], { path: '/ready', port: 'admin' });
  assert.deepEqual(c!['livenessProbe']['httpGet'], { path: '/live', port: 'admin' });

  const svc = find('Service', 'bowline-control');
  assert.equal(svc['metadata']['namespace'], NS);
  assert.deepEqual(svc['spec']['selector'], dep['spec']['selector']['matchLabels']);
  assert.deepEqual(svc['spec']['ports'], [{ name: 'grpc-xds', port: 18000, targetPort: 'grpc-xds', appProtocol: 'grpc' }]);
});

test("the sidecar bootstrap: the ConfigMap the injector mounts, naming the control plane's Service", () => {
  const cm = find('ConfigMap', BOOTSTRAP_CONFIGMAP);
  assert.equal(cm['metadata']['namespace'], undefined, 'applied into each workload namespace');
  // The injected proxy runs with --bootstrap /etc/bowline/bootstrap.yaml, the ConfigMap mounted at /etc/bowline.
  const b = parseBootstrap(cm['data']['bootstrap.yaml'] as string, 'bootstrap.yaml');
  assert.deepEqual(b.ads, { host: `bowline-control.${NS}.svc.cluster.local`, port: find('Service', 'bowline-control')['spec']['ports'][0]['port'], delta: true });
  assert.equal(b.node.zone, '', 'the zone comes from each pod (BOWLINE_ZONE)');
});

test('bowline inject leaves every manifest here as it is', () => {
  for (const file of files(DIR)) {
    const text = readFileSync(file, 'utf8');
    const { output, reports } = injectManifests(text, defaultInjectOptions('0.1.0'));
    assert.equal(output, text, file);
    for (const r of reports) assert.ok(r.skipped !== undefined, `${r.kind} ${r.name}`);
  }
});
