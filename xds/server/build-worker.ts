// The piscina task: build the encoded snapshots of a mesh for the given zones (see snapshot-builder).

import type { EngineSnapshot } from '../../engine/config/snapshot';
import { type BuiltSnapshots, buildSnapshots } from './snapshot-builder';

export default function build(task: { mesh: EngineSnapshot; zones: string[] }): BuiltSnapshots {
  return buildSnapshots(task.mesh, task.zones);
}
