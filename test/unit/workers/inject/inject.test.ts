// `bowline inject` on real-world-shaped manifests: golden files (test/fixtures/inject: NAME.yaml in,
// NAME.golden.yaml out; BOWLINE_UPDATE_GOLDEN=1 rewrites them after a deliberate change), the fields
// the sidecar needs, idempotence, what is left alone, and errors that name the document.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { InjectError, injectManifests, type InjectReport } from '../../../../workers/inject/inject';
import { defaultInjectOptions, type InjectOptions } from '../../../../workers/inject/sidecar';

const FIXTURES = resolve(__dirname, '../../../../../test/fixtures/inject');
const OPTIONS = defaultInjectOptions('0.1.0');

/** Parsed manifests are walked by field path in the assertions: untyped on purpose. */
type Obj = Record<string, any>;

function inject(text: string, o: InjectOptions = OPTIONS): { output: string; reports: InjectReport[] } {
  return injectManifests(text, o);
}

/** The documents of a stream as plain objects, read as Kubernetes reads them (YAML 1.1). */
function objects(text: string): Obj[] {
  return parseAllDocuments(text, { version: '1.1' }).map((d) => d.toJS() as Obj);
}

function fixture(name: string): string {
  return readFileSync(join(FIXTURES, name), 'utf8');
}

const named = (list: Obj[] | undefined, name: string): Obj | undefined => list?.find((c) => c['name'] === name);

const inputs = readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml') && !f.endsWith('.golden.yaml'));

test('there are fixtures', () => assert.ok(inputs.length >= 7, inputs.join()));

for (const file of inputs) {
  const golden = file.replace(/\.yaml$/, '.golden.yaml');
  test(`${file}: output matches ${golden}`, () => {
    const { output } = inject(fixture(file));
    if (process.env['BOWLINE_UPDATE_GOLDEN'] === '1') writeFileSync(join(FIXTURES, golden), output);
    assert.equal(output, fixture(golden));
  });
  test(`${file}: injecting the output again gives it back byte for byte`, () => {
    const once = inject(fixture(file)).output;
    assert.equal(inject(once).output, once);
  });
}

test('the sidecar of a Deployment has the fields a cluster needs', () => {
  const [dep] = objects(fixture('deployment-commented.golden.yaml'));
  const pod = dep!['spec']['template'];
  assert.equal(pod['metadata']['annotations']['bowline.io/injected'], 'true');
  assert.equal(pod['metadata']['annotations']['kubectl.kubernetes.io/default-container'], 'web');
  const spec = pod['spec'];
  assert.equal(spec['terminationGracePeriodSeconds'], 15, 'raised from 5 so that the drain fits');
  // The app's init container runs before interception; the proxy comes first among the containers.
  assert.deepEqual(spec['initContainers'].map((c: Obj) => c['name']), ['wait-for-db', 'bowline-init']);
  assert.deepEqual(spec['containers'].map((c: Obj) => c['name']), ['bowline-proxy', 'web']);

  const init = named(spec['initContainers'], 'bowline-init')!;
  assert.equal(init['image'], 'ghcr.io/bowline-mesh/bowline:0.1.0');
  assert.deepEqual(init['args'], ['init', '--proxy-uid', '2102']);
  assert.deepEqual(init['securityContext']['capabilities']['add'], ['NET_ADMIN', 'NET_RAW']);
  assert.equal(init['securityContext']['runAsUser'], 0);
  assert.equal(init['securityContext']['runAsNonRoot'], false);

  const proxy = named(spec['containers'], 'bowline-proxy')!;
  assert.equal(proxy['image'], init['image']);
  assert.deepEqual(proxy['args'], ['proxy', '--bootstrap', '/etc/bowline/bootstrap.yaml', '--identity-token', '/var/run/secrets/tokens/bowline-token', '--admin', '0.0.0.0:4191', '--workers', '1']);
  assert.equal(proxy['securityContext']['runAsUser'], 2102);
  assert.equal(proxy['securityContext']['readOnlyRootFilesystem'], true);
  assert.deepEqual(proxy['ports'], [
    { name: 'bowline-inbound', containerPort: 4143 },
    { name: 'bowline-outbound', containerPort: 4140 },
    { name: 'bowline-admin', containerPort: 4191 },
  ]);
  assert.deepEqual(proxy['readinessProbe']['httpGet'], { path: '/ready', port: 4191 });
  assert.deepEqual(proxy['livenessProbe']['httpGet'], { path: '/live', port: 4191 });
  assert.deepEqual(proxy['resources'], { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } });
  assert.deepEqual(proxy['env'], [{ name: 'BOWLINE_ZONE', valueFrom: { fieldRef: { fieldPath: "metadata.labels['topology.kubernetes.io/zone']" } } }]);
  assert.deepEqual(proxy['lifecycle'], { preStop: { sleep: { seconds: 5 } } });
  assert.equal(proxy['restartPolicy'], undefined);
  assert.deepEqual(proxy['volumeMounts'], [
    { name: 'bowline-bootstrap', mountPath: '/etc/bowline', readOnly: true },
    { name: 'bowline-token', mountPath: '/var/run/secrets/tokens', readOnly: true },
  ]);
  assert.deepEqual(named(spec['volumes'], 'bowline-token'), {
    name: 'bowline-token',
    projected: { sources: [{ serviceAccountToken: { path: 'bowline-token', audience: 'bowline', expirationSeconds: 86400 } }] },
  });
  assert.deepEqual(named(spec['volumes'], 'bowline-bootstrap'), { name: 'bowline-bootstrap', configMap: { name: 'bowline-bootstrap' } });
});

test('what is not changed keeps its comments, quoting, layout and YAML 1.1 meaning', () => {
  const out = inject(fixture('deployment-commented.yaml')).output;
  for (const line of [
    '# Source: shop/templates/web.yaml',
    '  labels: {app: web, tier: frontend} # flow map, tight braces',
    "        prometheus.io/scrape: 'true' # single quotes kept",
    '      # waits for the database before the app starts',
    "        command: ['sh', '-c', 'until nc -z db 5432; do sleep 1; done']",
    '        - --upstream=http://api.shop.svc.cluster.local:8080/v1/catalogue?include=prices,stock&region=eu-west-1',
    '          value: "yes" # a string, not a YAML 1.1 boolean',
    '          defaultMode: 0644 # octal, as Kubernetes (YAML 1.1) reads it',
  ]) {
    assert.ok(out.includes(`${line}\n`), `kept: ${line}`);
  }
  assert.equal(named(objects(out)[0]!['spec']['template']['spec']['volumes'], 'config')!['configMap']['defaultMode'], 0o644);
  // The source's sequences are flush with their keys (kubectl's style); the added ones follow it.
  assert.ok(out.includes('      containers:\n      - name: bowline-proxy\n'));
  // Helm's style (indented) is followed in a file written that way.
  assert.ok(inject(fixture('multi-document.yaml')).output.includes('      containers:\n        - name: bowline-proxy\n'));
});

test('documents that are not workloads, or not changed, are copied byte for byte', () => {
  const src = fixture('multi-document.yaml');
  const out = inject(src).output;
  const service = src.slice(0, src.indexOf('---', 4) + 4);
  assert.ok(out.startsWith(service), 'the Service, its comment and markers');
  assert.ok(out.includes('---\n# nothing in this document\n---\n'), 'an empty document');
  assert.equal(inject(fixture('opted-out.yaml')).output, fixture('opted-out.yaml'));
  const odd = 'kind: ConfigMap\napiVersion:   v1\ndata: {  a: "1",b: 0x1F  }   # odd\n---\n';
  const unknown = 'kind: toString\nmetadata: {name: x}\n---\napiVersion: example.com/v1\nkind: Widget\nspec: {template: {spec: {containers: [{name: a}]}}}\n';
  assert.equal(inject(unknown).output, unknown, 'kinds it does not know');
  assert.equal(inject(odd).output, odd);
  assert.equal(inject('').output, '');
  assert.equal(inject('# only a comment\n').output, '# only a comment\n');
});

test('annotations: skipped ports go to bowline-init, opaque ports to the proxy, the template wins over the workload', () => {
  const [dep] = objects(inject(fixture('annotations.yaml')).output);
  const spec = dep!['spec']['template']['spec'];
  // The admin port (bowline init's default) stays skipped beside the pod's own.
  assert.deepEqual(named(spec['initContainers'], 'bowline-init')!['args'], ['init', '--proxy-uid', '2102', '--skip-inbound-ports', '4190,4191,9000,9001', '--skip-outbound-ports', '3306,5432']);
  assert.deepEqual(named(named(spec['containers'], 'bowline-proxy')!['env'], 'BOWLINE_OPAQUE_PORTS'), { name: 'BOWLINE_OPAQUE_PORTS', value: '5432' });
  assert.equal(spec['terminationGracePeriodSeconds'], 60, 'a longer grace period is kept');
  assert.equal(dep!['spec']['template']['metadata']['annotations']['kubectl.kubernetes.io/default-container'], 'orders', 'an existing choice is kept');

  const onWorkload = `kind: Deployment
metadata:
  name: w
  annotations: {bowline.io/skip-outbound-ports: "25", bowline.io/opaque-ports: "3306"}
spec:
  template:
    spec:
      containers: [{name: app, image: app}]
`;
  const [w] = objects(inject(onWorkload).output);
  const ws = w!['spec']['template']['spec'];
  assert.deepEqual(named(ws['initContainers'], 'bowline-init')!['args'], ['init', '--proxy-uid', '2102', '--skip-outbound-ports', '25']);
  assert.equal(named(named(ws['containers'], 'bowline-proxy')!['env'], 'BOWLINE_OPAQUE_PORTS')!['value'], '3306');
  assert.equal(ws['terminationGracePeriodSeconds'], undefined, 'the default (30 s) is enough');
  assert.equal(w!['spec']['template']['metadata']['annotations']['bowline.io/injected'], 'true', 'a template without metadata gets it');
});

test('Jobs and CronJobs get a native sidecar, so that their pods complete', () => {
  const [job, cron] = objects(fixture('job.golden.yaml'));
  const js = job!['spec']['template']['spec'];
  assert.deepEqual(js['initContainers'].map((c: Obj) => c['name']), ['bowline-init', 'bowline-proxy']);
  assert.deepEqual(js['containers'].map((c: Obj) => c['name']), ['migrate']);
  const proxy = named(js['initContainers'], 'bowline-proxy')!;
  assert.equal(proxy['restartPolicy'], 'Always');
  assert.equal(proxy['lifecycle'], undefined);
  assert.deepEqual(proxy['startupProbe']['httpGet'], { path: '/ready', port: 4191 });
  const cs = cron!['spec']['jobTemplate']['spec']['template']['spec'];
  // The app's own init containers come after the proxy, and so run meshed.
  assert.deepEqual(cs['initContainers'].map((c: Obj) => c['name']), ['bowline-init', 'bowline-proxy', 'fetch-templates']);
});

test('--native-sidecar for any workload; switching form or image moves and replaces, never duplicates', () => {
  const classic = inject(fixture('deployment-commented.yaml')).output;
  const native = inject(classic, { ...OPTIONS, nativeSidecar: true, image: 'registry.example.com/bowline:9.9.9' }).output;
  const spec = objects(native)[0]!['spec']['template']['spec'];
  assert.deepEqual(spec['initContainers'].map((c: Obj) => c['name']), ['bowline-init', 'bowline-proxy', 'wait-for-db']);
  assert.deepEqual(spec['containers'].map((c: Obj) => c['name']), ['web']);
  assert.deepEqual(spec['volumes'].map((c: Obj) => c['name']), ['config', 'bowline-bootstrap', 'bowline-token']);
  for (const c of spec['initContainers'].slice(0, 2)) assert.equal(c['image'], 'registry.example.com/bowline:9.9.9');
  // ... and back.
  assert.equal(inject(native).output, classic);
});

test('options: resources and workers', () => {
  const o: InjectOptions = { ...OPTIONS, proxyWorkers: 2, resources: { cpuRequest: '250m', memoryRequest: '96Mi', cpuLimit: '2', memoryLimit: '' } };
  const spec = objects(inject(fixture('pod.yaml'), o).output)[0]!['spec'];
  const proxy = named(spec['containers'], 'bowline-proxy')!;
  assert.deepEqual(proxy['resources'], { requests: { cpu: '250m', memory: '96Mi' }, limits: { cpu: '2' } });
  assert.deepEqual(proxy['args'].slice(-2), ['--workers', '2']);
});

test('reports say what was injected and what was skipped, and why', () => {
  const strip = (rs: InjectReport[]): string[] => rs.map((r) => `${r.document}:${r.line}${r.item === undefined ? '' : `[${r.item}]`} ${r.kind}/${r.name} ${r.skipped ?? 'injected'}`);
  assert.deepEqual(strip(inject(fixture('multi-document.yaml')).reports), ['2:15 Deployment/api injected', '4:42 StatefulSet/cache injected']);
  assert.deepEqual(strip(inject(fixture('list.yaml')).reports), ['1:1[1] DaemonSet/log-shipper injected', '1:1[2] Deployment/worker injected']);
  assert.deepEqual(strip(inject(fixture('opted-out.yaml')).reports), [
    '1:2 Deployment/legacy bowline.io/inject: disabled',
    '2:15 StatefulSet/ledger bowline.io/inject: disabled',
    '3:32 DaemonSet/node-exporter hostNetwork: true',
  ]);
});

test('JSON in (kubectl get -o json), JSON out', () => {
  const pod = objects(fixture('pod.yaml'))[0]!;
  const json = `${JSON.stringify(pod, null, 4)}\n`;
  const out = inject(json).output;
  const back = JSON.parse(out) as Obj;
  assert.deepEqual(back['spec']['containers'].map((c: Obj) => c['name']), ['bowline-proxy', 'shell']);
  assert.ok(out.startsWith('{\n    "apiVersion": "v1",\n'), 'indented as it was');
  assert.equal(inject(out).output, out);
});

test('errors name the document (and the List item) and what is wrong', () => {
  const bad = (text: string, re: RegExp): void => {
    assert.throws(() => inject(text), (e: Error) => e instanceof InjectError && re.test(e.message), `for ${JSON.stringify(text)}`);
  };
  const pod = 'kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: app}]}\n';
  bad(`${pod}---\nkind: Pod\nmetadata: [1\n`, /^document 2 \(line 4\): not YAML: at line 7, column 1: Flow sequence/);
  bad(`${pod}---\njust a string\n`, /^document 2 \(line 4\): not a Kubernetes object \(a scalar/);
  bad('- kind: Pod\n', /^document 1 \(line 1\): not a Kubernetes object \(a list/);
  bad('kind: List\nitems: [1]\n', /^document 1 \(line 1\): items\[0\]: not a Kubernetes object/);
  bad('kind: List\nitems:\n- kind: Deployment\n  metadata: {name: d}\n  spec: {}\n', /^document 1 \(line 1\): items\[0\]: Deployment d: spec\.template is missing/);
  bad('kind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {}}}\n', /Deployment d: spec\.template\.spec\.containers is missing/);
  bad('kind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n', /Pod p: spec\.containers has no container/);
  bad('kind: Pod\nmetadata: {name: p, annotations: {bowline.io/inject: "off"}}\nspec: {containers: [{name: a}]}\n', /Pod p: annotation bowline\.io\/inject: "off" is neither "enabled" nor "disabled"/);
  bad('kind: Pod\nmetadata: {name: p, annotations: {bowline.io/skip-inbound-ports: "80,http"}}\nspec: {containers: [{name: a}]}\n', /annotation bowline\.io\/skip-inbound-ports: "http" is not a port/);
  bad('kind: Pod\nmetadata: {name: p, annotations: {bowline.io/opaque-ports: "70000"}}\nspec: {containers: [{name: a}]}\n', /"70000" is not a port/);
  bad('kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a}], volumes: {}}\n', /Pod p: spec\.volumes is not a list/);
  bad('a: 1\na: 2\n', /^document 1 \(line 1\): not YAML: .*unique/);
});

test('keys with nothing after them (as templates render empty values) are filled in', () => {
  const text = 'kind: Pod\nmetadata:\n  name: p\n  annotations:\nspec:\n  initContainers:\n  containers:\n  - name: app\n  volumes:\n';
  const out = inject(text).output;
  const [pod] = objects(out);
  assert.equal(pod!['metadata']['annotations']['bowline.io/injected'], 'true');
  assert.deepEqual(pod!['spec']['initContainers'].map((c: Obj) => c['name']), ['bowline-init']);
  assert.deepEqual(pod!['spec']['volumes'].map((c: Obj) => c['name']), ['bowline-bootstrap', 'bowline-token']);
  assert.equal(inject(out).output, out);
});
