// One request stream of the proxy's own HTTP/2 server codec, as its exchange sees it: the request
// body arrives through StreamOwner callbacks (held while paused, with the stream's window), and the
// answer goes out as HEADERS, DATA within the peer's flow-control windows, and trailers.

import { FlowStream } from './flow';
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

export class H2ServerStream extends FlowStream {
  owner: StreamOwner | null = null;
  /** Request body bytes so far, checked against content-length. */
  received = 0;
  contentLength = -1;
  headersSent = false;
  writableEnded = false;
  rstCode = 0;
  private waitForTrailers = false;

  constructor(
    id: number,
    private readonly conn: H2ServerConnection,
    sendWindow: number,
    recvWindow: number,
  ) {
    super(id, conn, sendWindow, recvWindow);
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
    const ok = this.enqueue(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    this.conn.afterSend(this);
    return ok;
  }

  end(chunk?: Buffer | string): void {
    if (this.closed || this.writableEnded) return;
    if (chunk !== undefined && chunk.length > 0) this.enqueue(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    this.writableEnded = true;
    this.endQueued = true;
    this.conn.pump(this);
  }

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

  protected take(chunk: Buffer): boolean {
    this.owner?.onRequestData(chunk);
    return true;
  }

  protected takeEnd(): void {
    this.owner?.onRequestEnd();
  }

  /** Marks the stream closed; the connection tells the owner. */
  markClosed(code: number): void {
    this.closed = true;
    this.rstCode = code;
    this.dropPending();
  }
}
