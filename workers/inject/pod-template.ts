// Where a workload keeps its pod template, for each kind `bowline inject` knows, and the bowline.io
// annotations that steer injection (on the pod template, else on the workload itself).

import { isMap, isScalar, type YAMLMap } from 'yaml';

/** The path from the workload's root to the pod template (a map with metadata and spec). */
const TEMPLATE_PATHS: ReadonlyMap<string, readonly string[]> = new Map([
  ['Pod', []],
  ['Deployment', ['spec', 'template']],
  ['StatefulSet', ['spec', 'template']],
  ['DaemonSet', ['spec', 'template']],
  ['ReplicaSet', ['spec', 'template']],
  ['ReplicationController', ['spec', 'template']],
  ['Job', ['spec', 'template']],
  ['CronJob', ['spec', 'jobTemplate', 'spec', 'template']],
]);

/** Kinds whose pods run to completion: a proxy that never exits would keep them from completing. */
const RUN_TO_COMPLETION = new Set(['Job', 'CronJob']);

export interface Workload {
  kind: string;
  /** metadata.name ('' when absent, e.g. generateName). */
  name: string;
  root: YAMLMap;
  /** The pod (for kind Pod) or the pod template, and its path ('' for a Pod) for messages. */
  template: YAMLMap;
  templatePath: string;
  runsToCompletion: boolean;
}

/** A string field of a map ('' when absent; numbers and booleans as written). */
export function stringAt(map: YAMLMap, ...path: string[]): string {
  const v = map.getIn(path, true);
  return isScalar(v) && v.value !== null && v.value !== undefined ? String(v.value) : '';
}

/** The workload in a manifest, or null when its kind carries no pod template; throws when the template is missing or not a map. */
export function findWorkload(root: YAMLMap): Workload | null {
  const kind = stringAt(root, 'kind');
  const path = TEMPLATE_PATHS.get(kind);
  if (path === undefined) return null;
  const name = stringAt(root, 'metadata', 'name');
  const template = path.length === 0 ? root : root.getIn(path, true);
  if (!isMap(template)) throw new Error(`${kind} ${name || '(no name)'}: ${path.join('.')} is ${template === undefined ? 'missing' : 'not a map'}`);
  return { kind, name, root, template, templatePath: path.join('.'), runsToCompletion: RUN_TO_COMPLETION.has(kind) };
}

/** An annotation as the pod template has it, else as the workload has it. */
export function annotation(w: Workload, key: string): string | undefined {
  for (const m of [w.template, w.root]) {
    const annotations = m.getIn(['metadata', 'annotations'], true);
    if (!isMap(annotations)) continue;
    const v = annotations.get(key, true);
    if (isScalar(v) && v.value !== null && v.value !== undefined) return String(v.value);
  }
  return undefined;
}
