// A request body held whole before anything is sent on (MCP inspection): the bytes after the head,
// kept as they arrive until the body's framing says it ended, or a bound is passed. The scanner that
// frames pass-through bodies frames this one too, so both accept and refuse the same bodies.

import { ChunkedScanner } from './chunked-scanner';
import { BodyKind } from './head-parser';

/** add(): the body has not ended yet. */
export const COLLECT_MORE = -1;
/** add(): the chunked framing is broken (the scanner's error says how). */
export const COLLECT_BAD = -2;
/** add(): past the bound (and a slack) before the end. */
export const COLLECT_TOO_LARGE = -3;

/**
 * Bodies a little over the bound are still read to their end (then refused, or passed on), so the
 * connection stays usable and the client reads the answer; a chunked body's framing fits in it too.
 */
const SLACK_BYTES = 64 * 1024;

export class BodyCollector {
  private readonly parts: Buffer[];
  private bytes: number;

  constructor(
    /** The head from offset 0 and whatever followed it in the same read (not the socket's read buffer). */
    first: Buffer,
    /** Where the body starts in the collected bytes (the head's length). */
    readonly bodyStart: number,
    private readonly kind: BodyKind.Length | BodyKind.Chunked,
    private readonly contentLength: number,
    private readonly scanner: ChunkedScanner,
    private readonly limit: number,
  ) {
    this.parts = [first];
    this.bytes = first.length;
    if (kind === BodyKind.Chunked) scanner.reset();
  }

  /** Adds bytes (null: only what came with the head); returns where the body ends in whole(), or COLLECT_*. */
  add(chunk: Buffer | null): number {
    if (chunk !== null) {
      this.parts.push(chunk);
      this.bytes += chunk.length;
    }
    const start = this.bodyStart;
    if (this.kind === BodyKind.Length) {
      if (this.bytes - start >= this.contentLength) return start + this.contentLength;
      return this.bytes - start > this.limit + SLACK_BYTES ? COLLECT_TOO_LARGE : COLLECT_MORE;
    }
    // The scanner keeps its state: only the new bytes are scanned (the first buffer from the body's start).
    const b = chunk ?? this.parts[0]!;
    const r = this.scanner.scan(b, chunk === null ? start : 0, b.length);
    if (r === -2) return COLLECT_BAD;
    if (r >= 0) return this.bytes - (b.length - r);
    return this.bytes - start > this.limit + SLACK_BYTES ? COLLECT_TOO_LARGE : COLLECT_MORE;
  }

  /** Everything collected, in one buffer. */
  whole(): Buffer {
    return this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
  }

  /** The body of `whole` (ending at `stop`), decoded when chunked. */
  body(whole: Buffer, stop: number): Buffer {
    if (this.kind === BodyKind.Length) return whole.subarray(this.bodyStart, stop);
    const parts: Buffer[] = [];
    const d = new ChunkedScanner();
    d.onData = (b, s, e): void => {
      parts.push(b.subarray(s, e));
    };
    d.scan(whole, this.bodyStart, stop);
    return Buffer.concat(parts);
  }
}
