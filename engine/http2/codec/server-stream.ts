// One request stream of the proxy's own HTTP/2 server codec, as its exchange sees it: the request
// body arrives through StreamOwner callbacks (held while paused, with the stream's window), and the
// answer goes out as HEADERS, DATA within the peer's flow-control windows, and trailers.

import { H2Error } from './frames';
import type { H2ServerConnection } from './server-connection';

/** What the exchange of a stream is told. Calls come from the connection's read or write path. */
export interface StreamOwner {
  onRequestData(chunk: Buffer): void;
  onRequestEnd(): void;
  /** The stream ended: both sides done, reset by either side, or the connection went away. */
  onClientClose(): void;
  /** write() returned false earlier; the stream can take more now. */
  onClientDrain(): void;
  /** end() was called on a stream that waits for trailers: call sendTrailers() now. */
  onWantTrailers(): void;
}

export type OutHeaders = Record<string, string | string[] | number | undefined>;

export interface RespondOptions {
  endStream?: boolean;
  waitForTrailers?: boolean;
}

export class H2ServerStream {
  owner: StreamOwner | null = null;
  /** Peer's window for our DATA on this stream. */
  sendWindow: number;
  /** Request DATA delivered to the owner since the last WINDOW_UPDATE we sent for this stream. */
  recvUnacked = 0;
  /** Request DATA the peer may still send before a WINDOW_UPDATE (our window for this stream). */
  recvWindow: number;
  /** Request body bytes so far, checked against content-length. */
  received = 0;
  contentLength = -1;
  remoteEnded = false;
  localEnded = false;
  headersSent = false;
  writableEnded = false;
  closed = false;
  rstCode = 0;
  paused = false;
  /** Answer DATA waiting for window: chunks and the offset into the first. */
  pending: Buffer[] = [];
  pendingOffset = 0;
  pendingBytes = 0;
  /** end() was called: END_STREAM (or the trailers) follows the pending data. */
  endQueued = false;
  private waitForTrailers = false;
  /** Request data that arrived while paused. */
  private held: Buffer[] | null = null;
  private heldEnd = false;
  /** write() returned false: tell the owner when there is room again. */
  needsDrain = false;

  constructor(
    readonly id: number,
    private readonly conn: H2ServerConnection,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  get destroyed(): boolean {
    return this.closed;
  }

  respond(headers: OutHeaders, opts: RespondOptions = {}): void {
    if (this.closed || this.headersSent) throw new Error(`stream ${this.id}: ${this.closed ? 'closed' : 'headers already sent'}`);
    this.headersSent = true;
    this.waitForTrailers = opts.waitForTrailers === true;
    const end = opts.endStream === true;
    this.conn.sendHeaders(this, headers, end, true);
    if (end) {
      this.writableEnded = true;
      this.localEnded = true;
      this.conn.maybeClose(this);
    }
  }

  write(chunk: Buffer | string): boolean {
    if (this.closed || this.writableEnded) return true;
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (b.length > 0) {
      this.pending.push(b);
      this.pendingBytes += b.length;
      this.conn.pump(this);
    }
    const ok = this.pendingBytes === 0 && !this.conn.blocked;
    if (!ok) this.needsDrain = true;
    return ok;
  }

  end(chunk?: Buffer | string): void {
    if (this.closed || this.writableEnded) return;
    if (chunk !== undefined && chunk.length > 0) this.write(chunk);
    this.writableEnded = true;
    this.endQueued = true;
    this.conn.pump(this);
  }

  /** Called by the connection once all pending data went out after end(). */
  finishLocal(): void {
    if (this.waitForTrailers) {
      this.waitForTrailers = false;
      this.owner?.onWantTrailers();
      return;
    }
    this.conn.sendEndData(this);
    this.localEnded = true;
    this.conn.maybeClose(this);
  }

  sendTrailers(trailers: OutHeaders): void {
    if (this.closed || this.localEnded) return;
    let any = false;
    for (const k of Object.keys(trailers)) if (trailers[k] !== undefined && k.charCodeAt(0) !== 58) any = true;
    // Empty trailers: an empty DATA frame with END_STREAM, as node:http2 does.
    if (any) this.conn.sendHeaders(this, trailers, true, false);
    else this.conn.sendEndData(this);
    this.localEnded = true;
    this.conn.maybeClose(this);
  }

  /** Resets the stream (RST_STREAM with `code`). */
  close(code: number = H2Error.Cancel): void {
    if (this.closed) return;
    this.conn.reset(this, code);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const held = this.held;
    this.held = null;
    // The owner may pause again while taking these: the rest is held again, in order.
    if (held !== null) for (const c of held) this.deliver(c);
    if (this.paused) return;
    if (this.heldEnd) {
      this.heldEnd = false;
      this.owner?.onRequestEnd();
    }
    this.conn.creditStream(this);
  }

  /** Request DATA from the connection (already copied out of the read buffer). */
  deliver(chunk: Buffer): void {
    if (this.paused) {
      (this.held ??= []).push(chunk);
      return;
    }
    this.recvUnacked += chunk.length;
    this.conn.consumed(this, chunk.length);
    this.owner?.onRequestData(chunk);
    this.conn.creditStream(this);
  }

  deliverEnd(): void {
    if (this.paused || this.held !== null) {
      this.heldEnd = true;
      return;
    }
    this.owner?.onRequestEnd();
  }

  /** Marks the stream closed; the connection tells the owner. */
  markClosed(code: number): void {
    this.closed = true;
    this.rstCode = code;
    this.pending.length = 0;
    this.pendingBytes = 0;
    this.held = null;
  }
}
