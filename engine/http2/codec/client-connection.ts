// The client side of one HTTP/2 connection, the proxy's own codec, for upstream sessions (h2c
// services, gRPC servers, and peer proxies over mutual TLS): requests are HEADERS + DATA within the
// server's windows, answers are parsed from the socket's reads and checked (RFC 9113 8.3.2), and all
// frames of one event-loop turn leave in one write. The connection opens no stream before the
// server's first SETTINGS (its stream limit) arrived; a GOAWAY marks later streams refused.

import type * as net from 'node:net';
import { DEFAULT_MAX_FRAME, DEFAULT_WINDOW, Flag, FrameType, H2Error, MAX_WINDOW, PREFACE, Setting } from './frames';
import { ConnectionRecvWindow, creditStreamWindow, type FlowConnection, FlowStream, sendPending } from './flow';
import { debugEnabled, debugLog } from '../../debug';
import { FrameWriter } from './frame-writer';
import { HpackDecoder, HpackEncoder, HpackError } from './hpack';

export type RequestHeaders = Record<string, string | string[] | number | undefined>;
export type ResponseHeaders = Record<string, string | string[]>;

/** What a client stream tells its owner (the attempt of an exchange). */
export interface ClientStreamOwner {
  onResponse(status: number, headers: ResponseHeaders, endStream: boolean): void;
  /** Response data; false asks for a pause (flow control holds the server). */
  onData(chunk: Buffer): boolean;
  onTrailers(trailers: ResponseHeaders): void;
  onEnd(): void;
  /**
   * The stream failed: reset by the server (`code`), refused (not processed: REFUSED_STREAM or past
   * a GOAWAY), or the connection went away.
   */
  onReset(code: number, refused: boolean): void;
  /** The request side can take more after write() returned false. */
  onDrain(): void;
}

const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host']);
const DEBUG = debugEnabled('h2');
const NAME_OK = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") NAME_OK[c.charCodeAt(0)] = 1;

export class H2ClientStream extends FlowStream {
  owner: ClientStreamOwner | null;
  responded = false;

  constructor(
    id: number,
    private readonly conn: H2ClientConnection,
    owner: ClientStreamOwner,
    sendWindow: number,
    recvWindow: number,
  ) {
    super(id, conn, sendWindow, recvWindow);
    this.owner = owner;
  }

  /** Request body; `flushed` runs once the chunk was handed to the socket (or dropped). */
  write(chunk: Buffer, flushed?: () => void): boolean {
    if (this.closed || this.localEnded || this.endQueued) {
      flushed?.();
      return true;
    }
    const ok = this.enqueue(chunk, flushed);
    this.conn.afterSend(this);
    return ok;
  }

  end(): void {
    if (this.closed || this.localEnded || this.endQueued) return;
    this.endQueued = true;
    this.conn.pump(this);
  }

  /** RST_STREAM CANCEL; the owner hears nothing more. */
  cancel(): void {
    this.owner = null;
    if (!this.closed) this.conn.reset(this, H2Error.Cancel);
  }

  finishLocal(): void {
    this.localEnded = true;
    this.conn.sendEndData(this);
  }

  protected take(chunk: Buffer): boolean {
    const o = this.owner;
    return o === null || o.onData(chunk);
  }

  protected takeEnd(): void {
    this.conn.endStream(this);
  }
}

export interface ClientSettings {
  initialWindow: number;
  connectionWindow: number;
  maxHeaderListBytes: number;
}

export class H2ClientConnection implements FlowConnection {
  private readonly streams = new Map<number, H2ClientStream>();
  private readonly decoder = new HpackDecoder(4096);
  private readonly encoder = new HpackEncoder();
  readonly out: FrameWriter;
  private rest: Buffer | null = null;
  private nextId = 1;
  /** The server's first SETTINGS arrived. */
  settled = false;
  /** GOAWAY received (or sent): no new streams. */
  goingAway = false;
  closed = false;
  /** Highest stream id the server said it may have processed (GOAWAY); -1: none. */
  private goawayLastId = -1;
  peerMaxStreams = 100;
  private peerInitialWindow = DEFAULT_WINDOW;
  peerMaxFrame = DEFAULT_MAX_FRAME;
  connSendWindow = DEFAULT_WINDOW;
  private readonly recv: ConnectionRecvWindow;
  readonly windowWaiters = new Set<FlowStream>();
  private blockStream = 0;
  private blockParts: Buffer[] = [];
  private blockBytes = 0;
  private blockEnd = false;
  activeStreams = 0;

  constructor(
    readonly socket: net.Socket,
    private readonly settings: ClientSettings,
    private readonly events: { onSettled(): void; onGoAway(): void; onClose(): void },
  ) {
    this.out = new FrameWriter(socket, () => this.onDrain());
    this.recv = new ConnectionRecvWindow(settings.connectionWindow, this.out);
    const b = this.out.reserve(PREFACE.length);
    PREFACE.copy(this.out.staging, b);
    this.out.settings([
      [Setting.EnablePush, 0],
      [Setting.InitialWindowSize, settings.initialWindow],
      [Setting.MaxHeaderListSize, settings.maxHeaderListBytes],
    ]);
    if (settings.connectionWindow > DEFAULT_WINDOW) this.out.frame32(FrameType.WindowUpdate, 0, settings.connectionWindow - DEFAULT_WINDOW);
  }

  get blocked(): boolean {
    return this.out.blocked;
  }

  /** Streams this connection may still open now. */
  get room(): number {
    if (this.goingAway || this.closed) return 0;
    return this.peerMaxStreams - this.activeStreams;
  }

  /** Opens a stream with the request's HEADERS (pseudo-headers first). */
  request(headers: RequestHeaders, endStream: boolean, owner: ClientStreamOwner): H2ClientStream {
    const id = this.nextId;
    this.nextId += 2;
    const st = new H2ClientStream(id, this, owner, this.peerInitialWindow, this.settings.initialWindow);
    this.streams.set(id, st);
    this.activeStreams++;
    const enc = this.encoder;
    enc.begin();
    for (const p of [':method', ':scheme', ':authority', ':path']) {
      const v = headers[p];
      if (v !== undefined) enc.field(p, String(v));
    }
    enc.fields(headers, CONNECTION_SPECIFIC);
    this.out.headers(id, enc.end(), endStream, this.peerMaxFrame);
    if (endStream) st.localEnded = true;
    return st;
  }

  /** Sends what the windows allow of a stream's pending request data; END_STREAM with its last piece. */
  pump(st: H2ClientStream): void {
    sendPending(this, st, true);
    this.maybeClose(st);
    this.afterSend(st);
  }

  /** An empty DATA frame with END_STREAM (a request whose body ended with nothing pending). */
  sendEndData(st: H2ClientStream): void {
    this.out.frame(FrameType.Data, Flag.EndStream, st.id, null);
  }

  /** Tells a stream's owner it may write again, once nothing of it waits. */
  afterSend(st: H2ClientStream): void {
    if (st.needsDrain && st.pendingBytes === 0 && !this.out.blocked) {
      st.needsDrain = false;
      st.owner?.onDrain();
    }
  }

  reset(st: H2ClientStream, code: number): void {
    this.out.frame32(FrameType.RstStream, st.id, code);
    this.closeStream(st);
  }

  // ------------------------------------------------------------------ input

  feed(chunk: Buffer): void {
    if (this.closed) return;
    let buf = chunk;
    if (this.rest !== null) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    let p = 0;
    const n = buf.length;
    while (n - p >= 9 && !this.closed) {
      const len = (buf[p]! << 16) | (buf[p + 1]! << 8) | buf[p + 2]!;
      if (len > DEFAULT_MAX_FRAME) return this.fail(H2Error.FrameSizeError);
      if (n - p < 9 + len) break;
      this.frame(buf[p + 3]!, buf[p + 4]!, buf.readUInt32BE(p + 5) & 0x7fffffff, buf, p + 9, p + 9 + len);
      p += 9 + len;
    }
    if (p < n && !this.closed) this.rest = Buffer.from(buf.subarray(p));
  }

  private frame(type: number, flags: number, id: number, buf: Buffer, s: number, e: number): void {
    if (!this.settled && type !== FrameType.Settings) return this.fail(H2Error.ProtocolError);
    if (this.blockStream !== 0 && type !== FrameType.Continuation) return this.fail(H2Error.ProtocolError);
    switch (type) {
      case FrameType.Data:
        return this.onData(flags, id, buf, s, e);
      case FrameType.Headers:
        return this.onHeaders(flags, id, buf, s, e);
      case FrameType.Continuation: {
        if (id !== this.blockStream) return this.fail(H2Error.ProtocolError);
        this.blockBytes += e - s;
        if (this.blockBytes > this.settings.maxHeaderListBytes * 2) return this.fail(H2Error.EnhanceYourCalm);
        this.blockParts.push(Buffer.from(buf.subarray(s, e)));
        if ((flags & Flag.EndHeaders) === 0) return;
        const block = Buffer.concat(this.blockParts);
        this.blockParts = [];
        this.blockStream = 0;
        return this.headerBlock(id, block, 0, block.length, this.blockEnd);
      }
      case FrameType.RstStream: {
        if (e - s !== 4) return this.fail(H2Error.FrameSizeError);
        const st = this.streams.get(id);
        if (st === undefined) return;
        const code = buf.readUInt32BE(s);
        if (DEBUG) debugLog('h2', `upstream stream ${id}: RST_STREAM ${code} from the server`);
        if (code === H2Error.NoError && st.remoteEnded) {
          // The whole answer is here (some of it perhaps still held for a paused owner): a server may
          // end the stream this way after a complete response (RFC 9113 8.1; node:http2 servers do).
          // Only our side stops; the answer is delivered to its end as usual.
          st.dropOutgoing();
          st.localEnded = true;
          // Closed now if the owner had the end already; else once the held rest reaches it (endStream).
          if (st.endTaken) this.maybeClose(st);
          return;
        }
        const o = st.owner;
        this.closeStream(st);
        o?.onReset(code, code === H2Error.RefusedStream);
        return;
      }
      case FrameType.Settings:
        return this.onSettings(flags, buf, s, e);
      case FrameType.Ping:
        if ((flags & Flag.Ack) === 0 && e - s === 8) this.out.frame(FrameType.Ping, Flag.Ack, 0, buf, s, e);
        return;
      case FrameType.GoAway: {
        if (e - s < 8) return this.fail(H2Error.FrameSizeError);
        this.goawayLastId = buf.readUInt32BE(s) & 0x7fffffff;
        this.goingAway = true;
        // Streams past the last one the server may have processed were not: refused, safe to replay.
        for (const st of [...this.streams.values()]) {
          if (st.id > this.goawayLastId) {
            const o = st.owner;
            this.closeStream(st);
            o?.onReset(H2Error.RefusedStream, true);
          }
        }
        this.events.onGoAway();
        if (this.activeStreams === 0) this.close();
        return;
      }
      case FrameType.WindowUpdate: {
        if (e - s !== 4) return this.fail(H2Error.FrameSizeError);
        const inc = buf.readUInt32BE(s) & 0x7fffffff;
        if (id === 0) {
          this.connSendWindow += inc;
          if (inc === 0 || this.connSendWindow > MAX_WINDOW) return this.fail(H2Error.FlowControlError);
          const waiting = [...this.windowWaiters];
          this.windowWaiters.clear();
          for (const st of waiting) this.pump(st as H2ClientStream);
          return;
        }
        const st = this.streams.get(id);
        if (st === undefined) return;
        st.sendWindow += inc;
        if (inc === 0 || st.sendWindow > MAX_WINDOW) return this.streamFail(st, H2Error.FlowControlError);
        this.pump(st);
        return;
      }
      case FrameType.PushPromise:
        // Push was disabled in our SETTINGS.
        return this.fail(H2Error.ProtocolError);
      default:
        return;
    }
  }

  private onSettings(flags: number, buf: Buffer, s: number, e: number): void {
    if ((flags & Flag.Ack) !== 0) return;
    if ((e - s) % 6 !== 0) return this.fail(H2Error.FrameSizeError);
    for (let p = s; p < e; p += 6) {
      const key = buf.readUInt16BE(p);
      const v = buf.readUInt32BE(p + 2);
      if (key === Setting.MaxConcurrentStreams) this.peerMaxStreams = Math.min(v, 1 << 20);
      else if (key === Setting.InitialWindowSize) {
        if (v > MAX_WINDOW) return this.fail(H2Error.FlowControlError);
        const delta = v - this.peerInitialWindow;
        this.peerInitialWindow = v;
        for (const st of this.streams.values()) {
          st.sendWindow += delta;
          if (delta > 0) this.pump(st);
        }
      } else if (key === Setting.MaxFrameSize) {
        if (v < DEFAULT_MAX_FRAME || v > 16_777_215) return this.fail(H2Error.ProtocolError);
        this.peerMaxFrame = v;
      }
    }
    this.out.frame(FrameType.Settings, Flag.Ack, 0, null);
    if (!this.settled) {
      this.settled = true;
      this.events.onSettled();
    }
  }

  private onData(flags: number, id: number, buf: Buffer, s: number, e: number): void {
    const len = e - s;
    this.recv.window -= len;
    if (this.recv.window < 0) return this.fail(H2Error.FlowControlError);
    if ((flags & Flag.Padded) !== 0) {
      const pad = buf[s]!;
      s++;
      if (pad > e - s) return this.fail(H2Error.ProtocolError);
      e -= pad;
    }
    const st = this.streams.get(id);
    if (st === undefined || !st.responded || st.remoteEnded) {
      this.consumed(len);
      return;
    }
    st.recvWindow -= len;
    if (st.recvWindow < 0) return this.streamFail(st, H2Error.FlowControlError);
    if (len > e - s) this.consumed(len - (e - s));
    // Copied out of the read buffer: the client side may keep it until its socket flushes.
    if (e > s) st.deliver(Buffer.from(buf.subarray(s, e)));
    if ((flags & Flag.EndStream) !== 0) {
      st.remoteEnded = true;
      st.deliverEnd();
    }
  }

  private onHeaders(flags: number, id: number, buf: Buffer, s: number, e: number): void {
    if ((flags & Flag.Padded) !== 0) {
      const pad = buf[s]!;
      s++;
      if (pad > e - s) return this.fail(H2Error.ProtocolError);
      e -= pad;
    }
    if ((flags & Flag.Priority) !== 0) s += 5;
    if (s > e) return this.fail(H2Error.FrameSizeError);
    const end = (flags & Flag.EndStream) !== 0;
    if ((flags & Flag.EndHeaders) !== 0) return this.headerBlock(id, buf, s, e, end);
    this.blockStream = id;
    this.blockEnd = end;
    this.blockParts = [Buffer.from(buf.subarray(s, e))];
    this.blockBytes = e - s;
  }

  private headerBlock(id: number, buf: Buffer, s: number, e: number, end: boolean): void {
    const out: ResponseHeaders = {};
    let malformed = false;
    let regular = false;
    const err = this.decoder.decode(buf, s, e, this.settings.maxHeaderListBytes, (name, value) => {
      if (malformed) return;
      if (!fieldOk(name, value)) {
        malformed = true;
        return;
      }
      if (name.charCodeAt(0) === 58) {
        if (regular || name !== ':status' || out[name] !== undefined) malformed = true;
        else out[name] = value;
        return;
      }
      regular = true;
      if (CONNECTION_SPECIFIC.has(name) && name !== 'host') {
        malformed = true;
        return;
      }
      const prev = out[name];
      if (prev === undefined) out[name] = value;
      else if (typeof prev === 'string') out[name] = [prev, value];
      else prev.push(value);
    });
    if (err === HpackError.Compression) return this.fail(H2Error.CompressionError);
    const st = this.streams.get(id);
    if (st === undefined) return;
    if (err === HpackError.TooLarge || malformed) return this.streamFail(st, H2Error.ProtocolError);
    const o = st.owner;
    if (!st.responded) {
      const status = Number(out[':status']);
      if (!(status >= 100 && status <= 999)) return this.streamFail(st, H2Error.ProtocolError);
      // Interim answers (1xx) are not passed on.
      if (status < 200) return;
      st.responded = true;
      if (end) st.remoteEnded = true;
      o?.onResponse(status, out, end);
      if (end && !st.closed) this.endStream(st);
      return;
    }
    // Trailers: the last HEADERS, with END_STREAM and no pseudo-header.
    if (!end || out[':status'] !== undefined) return this.streamFail(st, H2Error.ProtocolError);
    st.remoteEnded = true;
    o?.onTrailers(out);
    st.deliverEnd();
  }

  /** The response is complete (after any held data went to the owner). */
  endStream(st: H2ClientStream): void {
    const o = st.owner;
    this.maybeClose(st);
    o?.onEnd();
  }

  private maybeClose(st: FlowStream): void {
    if (st.localEnded && st.remoteEnded) this.closeStream(st);
  }

  private closeStream(st: FlowStream): void {
    if (st.closed) return;
    st.closed = true;
    st.dropPending();
    this.streams.delete(st.id);
    this.windowWaiters.delete(st);
    this.activeStreams--;
    if (this.goingAway && this.activeStreams === 0) this.close();
  }

  private streamFail(st: H2ClientStream, code: number): void {
    if (DEBUG) debugLog('h2', `upstream stream ${st.id}: we reset it (code ${code}): ${new Error('why').stack}`);
    const o = st.owner;
    this.reset(st, code);
    o?.onReset(code, false);
  }

  // ------------------------------------------------------------------ flow control (receiving)

  /** `n` bytes of a stream were taken by its owner (or dropped): the connection window gets them back. */
  consumed(n: number): void {
    this.recv.consume(n);
  }

  creditStream(st: FlowStream): void {
    creditStreamWindow(this.out, st, this.settings.initialWindow);
  }

  private onDrain(): void {
    for (const st of this.streams.values()) {
      if (st.needsDrain && st.pendingBytes === 0) {
        st.needsDrain = false;
        st.owner?.onDrain();
      }
    }
  }

  // ------------------------------------------------------------------ ends

  /** Whether stream `id` was provably not processed (a GOAWAY said so). */
  refusedByGoAway(id: number): boolean {
    return this.goawayLastId >= 0 && id > this.goawayLastId;
  }

  /** A connection error: GOAWAY with `code`, every stream reset, the socket ended. */
  fail(code: H2Error): void {
    this.close(code);
  }

  /** Closes the connection with GOAWAY (NO_ERROR unless `code` says otherwise). */
  close(code: H2Error = H2Error.NoError): void {
    if (this.closed) return;
    if (DEBUG && code !== H2Error.NoError) debugLog('h2', `upstream connection: GOAWAY code ${code}: ${new Error('why').stack}`);
    this.out.frame64(FrameType.GoAway, 0, 0, code);
    this.out.flush();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.ended();
  }

  /** The socket closed under us. */
  socketClosed(): void {
    if (DEBUG && !this.closed) debugLog('h2', `upstream connection closed with ${this.streams.size} streams open`);
    this.ended();
  }

  /** Every stream still open fails; the session is told once. */
  private ended(): void {
    if (this.closed) return;
    this.closed = true;
    this.goingAway = true;
    for (const st of [...this.streams.values()]) {
      const o = st.owner;
      this.closeStream(st);
      o?.onReset(H2Error.Cancel, false);
    }
    this.events.onClose();
  }
}

function fieldOk(name: string, value: string): boolean {
  if (name.length === 0) return false;
  for (let i = name.charCodeAt(0) === 58 ? 1 : 0; i < name.length; i++) if (NAME_OK[name.charCodeAt(i)] !== 1) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 10 || c === 13) return false;
  }
  return true;
}
