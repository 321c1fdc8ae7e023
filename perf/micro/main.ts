// Runs the micro benchmarks and prints their markdown tables.
//
//   node dist/perf/micro/main.js [head] [chunked] [route] [sse]     (no argument: all of them)
//
// Knobs (env): MICRO_ROUNDS, MICRO_ROUND_MS, MICRO_WARMUP_MS (see bench-util.ts).

import * as fs from 'node:fs';
import * as os from 'node:os';
import { ROUND_MS, ROUNDS, sinkValue, WARMUP_MS } from './bench-util';
import { runChunkedBench } from './chunked-scanner.bench';
import { runHeadParserBench } from './head-parser.bench';
import { runRouteBench } from './route-table.bench';
import { runSseBench } from './sse-parser.bench';

const SUITES: Record<string, () => string> = {
  head: runHeadParserBench,
  chunked: runChunkedBench,
  route: runRouteBench,
  sse: runSseBench,
};

function main(): void {
  const args = process.argv.slice(2);
  for (const a of args) {
    if (!(a in SUITES)) {
      process.stderr.write(`unknown suite '${a}' (known: ${Object.keys(SUITES).join(', ')})\n`);
      process.exit(2);
    }
  }
  const names = args.length > 0 ? args : Object.keys(SUITES);
  const cpu = os.cpus()[0]?.model.trim() ?? '?';
  let affinity = '';
  try {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    affinity = /^Cpus_allowed_list:\s*(.*)$/m.exec(status)?.[1] ?? '';
  } catch {
    // not Linux
  }
  const out: string[] = [
    `### Micro benchmarks — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    '```',
    `node ${process.version} (${process.execArgv.join(' ') || 'no flags'}); ${os.cpus().length} cpus (${cpu}); cpus allowed: ${affinity || '?'}`,
    `rounds=${ROUNDS} round=${ROUND_MS}ms per contender warm-up=${WARMUP_MS}ms; figures are medians over rounds, contenders interleaved per round`,
    '```',
    '',
  ];
  process.stdout.write(out.join('\n') + '\n');
  for (const n of names) process.stdout.write(SUITES[n]() + '\n\n');
  if (sinkValue() === 0.5) process.stdout.write('\n'); // keeps the sink observable
}

main();
