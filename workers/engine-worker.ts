// Entry of one engine worker thread: an EngineHost driven by the supervisor's messages.

import { parentPort, workerData } from 'node:worker_threads';
import { EngineHost } from './engine-host';
import type { FromWorker, ToWorker, WorkerData } from './messages';
import { loadNativeSocket } from './native-socket';

const data = workerData as WorkerData;
const port = parentPort!;

function send(m: FromWorker): void {
  port.postMessage(m);
}

const host = new EngineHost({
  index: data.index,
  counts: data.counts,
  alive: data.alive,
  native: data.nativePath !== '' ? loadNativeSocket(data.nativePath).native : null,
  ownPorts: data.ownPorts,
  log: (level, msg, fields) => send({ type: 'log', level, msg, ...(fields === undefined ? {} : { fields }) }),
});

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'config':
      try {
        host.apply(m.snapshot, m.listeners);
        send({ type: 'ack', version: m.snapshot.version });
      } catch (e) {
        send({ type: 'nack', version: m.snapshot.version, error: (e as Error).message });
      }
      return;
    case 'metrics':
      send({ type: 'metrics', id: m.id, snapshot: host.metrics() });
      return;
    case 'drain':
      void host.drain(m.graceMs).then(() => {
        send({ type: 'drained' });
        port.close();
      });
      return;
    case 'crash':
      // Test hook (the supervisor sends it only with BOWLINE_TEST_HOOKS=1): an uncaught error.
      setImmediate(() => {
        throw new Error(`worker ${data.index}: crash requested`);
      });
      return;
  }
});
