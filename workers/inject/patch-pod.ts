// Puts the sidecar into one pod template in the YAML document model. What an earlier injection added
// is found by name and replaced in place of being added again, so injecting twice changes nothing.
// Only the keys that must change are touched: the rest of the template keeps its nodes (and with
// them its comments, key order and scalar styles).

import { type Document, isMap, isScalar, isSeq, type Node, Scalar, type YAMLMap, type YAMLSeq } from 'yaml';
import { stringAt } from './pod-template';
import { ANNOTATION, BOOTSTRAP_VOLUME, INIT_CONTAINER, MIN_TERMINATION_GRACE_S, PROXY_CONTAINER, TOKEN_VOLUME } from './sidecar';

export interface SidecarParts {
  init: Record<string, unknown>;
  proxy: Record<string, unknown>;
  volumes: Record<string, unknown>[];
  /** The proxy goes among the init containers as a native sidecar (see InjectOptions.nativeSidecar). */
  native: boolean;
}

const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';
const OUR_CONTAINERS = new Set([INIT_CONTAINER, PROXY_CONTAINER]);
const OUR_VOLUMES = new Set([TOKEN_VOLUME, BOOTSTRAP_VOLUME]);

/** A field's path for messages: `where` is '' at a document's root. */
function field(where: string, key: string): string {
  return where === '' ? key : `${where}.${key}`;
}

/** No key, or a key with nothing after it (`annotations:` as a template renders it when empty). */
function isAbsent(v: unknown): boolean {
  return v === undefined || v === null || (isScalar(v) && v.value === null);
}

/** `map[key]` as a map, created (at `index`, else at the end) when absent; throws when it is something else. */
function childMap(doc: Document, map: YAMLMap, key: string, where: string, index?: number): YAMLMap {
  const v = map.get(key, true);
  if (isAbsent(v)) {
    const created = doc.createNode({}) as YAMLMap;
    if (v !== undefined) map.set(key, created);
    else map.items.splice(index ?? map.items.length, 0, doc.createPair(key, created));
    return created;
  }
  if (!isMap(v)) throw new Error(`${field(where, key)} is not a map`);
  if (v.items.length === 0) v.flow = false; // `{}` grows into a block, not a one-line flow map
  return v;
}

/** `map[key]` as a list, created before `beforeKey` (else at the end) when absent; throws when it is something else. */
function childSeq(doc: Document, map: YAMLMap, key: string, where: string, beforeKey?: string): YAMLSeq {
  const v = map.get(key, true);
  if (isAbsent(v)) {
    const created = doc.createNode([]) as YAMLSeq;
    const at = beforeKey === undefined ? -1 : map.items.findIndex((p) => isScalar(p.key) && p.key.value === beforeKey);
    if (v !== undefined) map.set(key, created);
    else map.items.splice(at < 0 ? map.items.length : at, 0, doc.createPair(key, created));
    return created;
  }
  if (!isSeq(v)) throw new Error(`${field(where, key)} is not a list`);
  return v;
}

/** Drops the items of a list of named maps whose name is in `names`. */
function dropNamed(seq: YAMLSeq, names: ReadonlySet<string>): void {
  seq.items = seq.items.filter((it) => !(isMap(it) && names.has(stringAt(it, 'name'))));
}

function add(doc: Document, seq: YAMLSeq, at: number, values: Record<string, unknown>[]): void {
  if (seq.items.length === 0) seq.flow = false; // `[]` grows into a block list
  seq.items.splice(at < 0 ? seq.items.length : at, 0, ...values.map((v) => doc.createNode(v) as Node));
}

export function patchPodTemplate(doc: Document, template: YAMLMap, parts: SidecarParts, where: string): void {
  const spec = template.get('spec', true);
  const specAt = field(where, 'spec');
  if (!isMap(spec)) throw new Error(`${specAt} is ${spec === undefined ? 'missing' : 'not a map'}`);
  const containers = spec.get('containers', true);
  if (!isSeq(containers)) throw new Error(`${specAt}.containers is ${containers === undefined ? 'missing' : 'not a list'}`);
  dropNamed(containers, OUR_CONTAINERS);
  const app = containers.items.find(isMap);
  if (app === undefined) throw new Error(`${specAt}.containers has no container to add the proxy to`);

  // A template without metadata gets it first, where people look for it.
  const annotations = childMap(doc, childMap(doc, template, 'metadata', where, 0), 'annotations', field(where, 'metadata'));
  const injected = new Scalar('true');
  injected.type = Scalar.QUOTE_DOUBLE;
  annotations.set(ANNOTATION.injected, injected);

  const inits = childSeq(doc, spec, 'initContainers', specAt, 'containers');
  dropNamed(inits, OUR_CONTAINERS);
  if (parts.native) {
    // Interception first, then the proxy, then the app's own init containers: they run meshed.
    add(doc, inits, 0, [parts.init, parts.proxy]);
  } else {
    // Last: the proxy is not running yet, so an init container after this one could not connect out.
    add(doc, inits, -1, [parts.init]);
    // First: the kubelet starts containers in order, so the proxy gets a head start on the app.
    add(doc, containers, 0, [parts.proxy]);
    // ... and `kubectl logs` / `exec` without -c keep meaning the app, not the proxy.
    if (!annotations.has(DEFAULT_CONTAINER_ANNOTATION)) annotations.set(DEFAULT_CONTAINER_ANNOTATION, stringAt(app, 'name'));
  }

  const volumes = childSeq(doc, spec, 'volumes', specAt);
  dropNamed(volumes, OUR_VOLUMES);
  add(doc, volumes, -1, parts.volumes);

  // Only a grace period set lower than the drain needs is raised; the default (30 s) is enough.
  const grace = spec.get('terminationGracePeriodSeconds', true);
  if (grace instanceof Scalar && (typeof grace.value === 'number' || typeof grace.value === 'bigint') && Number(grace.value) < MIN_TERMINATION_GRACE_S) {
    grace.value = MIN_TERMINATION_GRACE_S;
  }
}
