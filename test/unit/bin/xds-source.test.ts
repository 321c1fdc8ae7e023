// The proxy's zone in bootstrap mode: the bootstrap's node.locality.zone when it names one, else the
// zone from --zone / BOWLINE_ZONE (what an injected pod gets from its topology label).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { xdsSource } from '../../../bin/xds-source';

const BOOTSTRAP = (node: string): string => `node: ${node}
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    grpc_services: [{ google_grpc: { target_uri: 127.0.0.1:1, stat_prefix: ads } }]
`;

function zoneOf(node: string, zone: string | undefined): string {
  const dir = mkdtempSync(join(tmpdir(), 'bowline-xds-source-'));
  try {
    writeFileSync(join(dir, 'bootstrap.yaml'), BOOTSTRAP(node));
    const { source } = xdsSource(join(dir, 'bootstrap.yaml'), () => {}, undefined, zone);
    try {
      return (source.describe!() as { node: { zone: string } }).node.zone;
    } finally {
      source.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a bootstrap without a zone takes the one given', () => {
  assert.equal(zoneOf('{ id: sidecar }', 'zone-b'), 'zone-b');
  assert.equal(zoneOf('{ id: sidecar }', undefined), '');
});

test("the bootstrap's own zone wins", () => {
  assert.equal(zoneOf('{ id: sidecar, locality: { zone: zone-a } }', 'zone-b'), 'zone-a');
});
