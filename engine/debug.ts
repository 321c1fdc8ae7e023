// Debug tracing named per module (BOWLINE_DEBUG=h2,tcp or =all), off by default: a module asks once
// at load whether it is on, and a trace line costs one boolean test when it is not.

const wanted = new Set((process.env['BOWLINE_DEBUG'] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''));

/** Whether tracing of `module` is on (decided once, at start). */
export function debugEnabled(module: string): boolean {
  return wanted.has(module) || wanted.has('all');
}

/** One trace line on stderr, with the module's name. */
export function debugLog(module: string, msg: string): void {
  process.stderr.write(`debug ${module}: ${msg}\n`);
}
