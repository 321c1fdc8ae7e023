// The server side of one HTTP/2 connection, the proxy's own codec: frames are parsed in place from
// the socket's read buffer, header blocks decoded with HPACK and checked as RFC 9113 section 8
// demands (a malformed request is reset on its stream, never passed on), flow control runs both ways
// (our windows are credited as the exchanges take the data; the peer's windows pace our DATA), and
// everything written in one turn of the event loop leaves in one writev. Abuse is bounded: streams
// reset by the client are rate-limited (Rapid Reset), header blocks and CONTINUATION runs are
// bounded, SETTINGS and PING floods and a peer that does not read end the connection (GOAWAY
// ENHANCE_YOUR_CALM), and every protocol violation is a GOAWAY or RST_STREAM with its code.

import type * as net from 'node:net';
import { DEFAULT_MAX_FRAME, DEFAULT_WINDOW, Flag, FrameType, H2Error, MAX_WINDOW, PREFACE, Setting } from './frames';
import { ConnectionRecvWindow, creditStreamWindow, type FlowConnection, type FlowStream, sendPending } from './flow';
import { FrameWriter } from './frame-writer';
import { HpackDecoder, HpackEncoder, HpackError } from './hpack';
import { H2ServerStream, type OutHeaders } from './server-stream';

export interface ServerSettings {
  maxConcurrentStreams: number;
  /** Our window per stream (SETTINGS_INITIAL_WINDOW_SIZE). */
  initialWindow: number;
  /** Our connection window (raised from 65,535 by a WINDOW_UPDATE at the start). */
  connectionWindow: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE, and the limit on a decoded header list. */
  maxHeaderListBytes: number;
}

export interface ConnectionHandler {
  /** A new request stream with its validated header object (pseudo-headers included). */
  onStream(stream: H2ServerStream, headers: Record<string, string | string[]>, endStream: boolean): void;
  /** The connection is gone (after GOAWAY, an error, or the socket closing). */
  onClose(): void;
}

/** Connection-specific fields, forbidden in HTTP/2 (RFC 9113 8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path', ':protocol']);

// Field-name characters: lower-case tchar (RFC 9110 5.6.2); upper case is malformed in HTTP/2.
const NAME_OK = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") NAME_OK[c.charCodeAt(0)] = 1;

/** Client resets of streams we had not answered: a burst this large, refilled per second. */
const RESET_BURST = 400;
const RESETS_PER_SECOND = 100;
/** SETTINGS and PING frames per second before the peer is told to calm down. */
const CONTROL_FRAMES_PER_SECOND = 1000;
/** Bytes queued to a peer that does not read before the connection is dropped. */
const MAX_UNREAD_BYTES = 4 * 1024 * 1024;
/** A header block (HEADERS + CONTINUATION) bigger than this many times the list limit is refused. */
const BLOCK_FACTOR = 2;

export class H2ServerConnection implements FlowConnection {
  private readonly streams = new Map<number, H2ServerStream>();
  private readonly decoder: HpackDecoder;
  private readonly encoder = new HpackEncoder();
  /** Unparsed bytes kept between reads (a partial frame), copied out of the read buffer. */
  private rest: Buffer | null = null;
  private prefaceSeen = false;
  private settingsSeen = false;
  private lastStreamId = 0;
  private goingAway = false;
  private closedAll = false;
  // header block in progress (HEADERS without END_HEADERS, then CONTINUATION)
  private blockStream = 0;
  private blockParts: Buffer[] = [];
  private blockBytes = 0;
  private blockEndStream = false;
  private blockIsTrailers = false;
  // peer settings
  private peerInitialWindow = DEFAULT_WINDOW;
  peerMaxFrame = DEFAULT_MAX_FRAME;
  connSendWindow = DEFAULT_WINDOW;
  private readonly recv: ConnectionRecvWindow;
  readonly out: FrameWriter;
  /** Streams with answer DATA waiting for the connection window. */
  readonly windowWaiters = new Set<FlowStream>();
  // abuse accounting
  private resetTokens = RESET_BURST;
  private resetRefillMs = 0;
  private controlWindowMs = 0;
  private controlFrames = 0;
  openStreams = 0;

  constructor(
    readonly socket: net.Socket,
    private readonly settings: ServerSettings,
    private readonly handler: ConnectionHandler,
    private readonly now: () => number,
  ) {
    this.decoder = new HpackDecoder(4096);
    this.out = new FrameWriter(socket, () => this.onDrain());
    this.recv = new ConnectionRecvWindow(settings.connectionWindow, this.out);
    // Our SETTINGS first, then the connection window raised to what we want.
    const s: [number, number][] = [
      [Setting.MaxConcurrentStreams, settings.maxConcurrentStreams],
      [Setting.InitialWindowSize, settings.initialWindow],
      [Setting.MaxHeaderListSize, settings.maxHeaderListBytes],
      [Setting.EnablePush, 0],
    ];
    this.out.settings(s);
    if (settings.connectionWindow > DEFAULT_WINDOW) this.out.frame32(FrameType.WindowUpdate, 0, settings.connectionWindow - DEFAULT_WINDOW);
  }

  get blocked(): boolean {
    return this.out.blocked;
  }

  // ------------------------------------------------------------------ input

  /** Bytes from the socket (a read-buffer slice valid during this call only). */
  feed(chunk: Buffer): void {
    if (this.closedAll) return;
    let buf = chunk;
    if (this.rest !== null) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    let p = 0;
    if (!this.prefaceSeen) {
      if (buf.length < PREFACE.length) {
        if (PREFACE.compare(buf, 0, buf.length, 0, buf.length) !== 0) return this.goAway(H2Error.ProtocolError);
        this.rest = Buffer.from(buf);
        return;
      }
      if (PREFACE.compare(buf, 0, PREFACE.length, 0, PREFACE.length) !== 0) return this.goAway(H2Error.ProtocolError);
      this.prefaceSeen = true;
      p = PREFACE.length;
    }
    const n = buf.length;
    while (n - p >= 9 && !this.closedAll) {
      const len = (buf[p]! << 16) | (buf[p + 1]! << 8) | buf[p + 2]!;
      // Our SETTINGS_MAX_FRAME_SIZE is the default 16,384.
      if (len > DEFAULT_MAX_FRAME) return this.goAway(H2Error.FrameSizeError);
      if (n - p < 9 + len) break;
      const type = buf[p + 3]!;
      const flags = buf[p + 4]!;
      const id = buf.readUInt32BE(p + 5) & 0x7fffffff;
      this.frame(type, flags, id, buf, p + 9, p + 9 + len);
      p += 9 + len;
    }
    if (p < n && !this.closedAll) this.rest = Buffer.from(buf.subarray(p));
  }

  private frame(type: number, flags: number, id: number, buf: Buffer, s: number, e: number): void {
    if (!this.settingsSeen) {
      // The client's connection preface ends with a SETTINGS frame (RFC 9113 3.4).
      if (type !== FrameType.Settings || (flags & Flag.Ack) !== 0) return this.goAway(H2Error.ProtocolError);
      this.settingsSeen = true;
    }
    if (this.blockStream !== 0 && type !== FrameType.Continuation) return this.goAway(H2Error.ProtocolError);
    switch (type) {
      case FrameType.Data:
        return this.onData(flags, id, buf, s, e);
      case FrameType.Headers:
        return this.onHeaders(flags, id, buf, s, e);
      case FrameType.Priority:
        if (id === 0) return this.goAway(H2Error.ProtocolError);
        if (e - s !== 5) return this.streamError(id, H2Error.FrameSizeError);
        return;
      case FrameType.RstStream:
        return this.onRstStream(id, buf, s, e);
      case FrameType.Settings:
        return this.onSettings(flags, id, buf, s, e);
      case FrameType.PushPromise:
        return this.goAway(H2Error.ProtocolError);
      case FrameType.Ping:
        if (id !== 0) return this.goAway(H2Error.ProtocolError);
        if (e - s !== 8) return this.goAway(H2Error.FrameSizeError);
        if ((flags & Flag.Ack) !== 0) return;
        if (!this.countControl()) return;
        return this.out.frame(FrameType.Ping, Flag.Ack, 0, buf, s, e);
      case FrameType.GoAway:
        if (id !== 0) return this.goAway(H2Error.ProtocolError);
        // The client leaves: streams under way finish, no new ones come.
        this.goingAway = true;
        if (this.openStreams === 0) this.shutdown();
        return;
      case FrameType.WindowUpdate:
        return this.onWindowUpdate(id, buf, s, e);
      case FrameType.Continuation:
        return this.onContinuation(flags, id, buf, s, e);
      default:
        // Unknown frame types are ignored (RFC 9113 4.1).
        return;
    }
  }

  private onData(flags: number, id: number, buf: Buffer, s: number, e: number): void {
    if (id === 0) return this.goAway(H2Error.ProtocolError);
    const len = e - s;
    // Flow control counts the whole payload, padding included.
    this.recv.window -= len;
    if (this.recv.window < 0) return this.goAway(H2Error.FlowControlError);
    if ((flags & Flag.Padded) !== 0) {
      if (len < 1) return this.goAway(H2Error.ProtocolError);
      const pad = buf[s]!;
      s++;
      if (pad > e - s) return this.goAway(H2Error.ProtocolError);
      e -= pad;
    }
    const st = this.streams.get(id);
    if (st === undefined || st.remoteEnded) {
      // A stream we reset or finished: its data still counts for the connection window.
      this.consumed(len);
      if (id > this.lastStreamId) return this.goAway(H2Error.ProtocolError);
      return;
    }
    st.recvWindow -= len;
    if (st.recvWindow < 0) return this.streamError(id, H2Error.FlowControlError);
    // Padding is consumed at once.
    const payload = e - s;
    if (len > payload) this.consumed(len - payload);
    st.received += payload;
    if (st.contentLength >= 0 && st.received > st.contentLength) return this.streamError(id, H2Error.ProtocolError);
    const end = (flags & Flag.EndStream) !== 0;
    if (end && st.contentLength >= 0 && st.received !== st.contentLength) return this.streamError(id, H2Error.ProtocolError);
    // Copied: the read buffer is refilled by the next read, while an exchange may keep the chunk.
    if (payload > 0) st.deliver(Buffer.from(buf.subarray(s, e)));
    if (end) {
      st.remoteEnded = true;
      st.deliverEnd();
      this.maybeClose(st);
    }
  }

  private onHeaders(flags: number, id: number, buf: Buffer, s: number, e: number): void {
    if (id === 0 || (id & 1) === 0) return this.goAway(H2Error.ProtocolError);
    if ((flags & Flag.Padded) !== 0) {
      if (e - s < 1) return this.goAway(H2Error.ProtocolError);
      const pad = buf[s]!;
      s++;
      if (pad > e - s) return this.goAway(H2Error.ProtocolError);
      e -= pad;
    }
    if ((flags & Flag.Priority) !== 0) {
      if (e - s < 5) return this.goAway(H2Error.FrameSizeError);
      s += 5;
    }
    const existing = this.streams.get(id);
    if (existing === undefined && id <= this.lastStreamId) return this.goAway(H2Error.StreamClosed);
    this.blockIsTrailers = existing !== undefined;
    if (this.blockIsTrailers && (existing!.remoteEnded || (flags & Flag.EndStream) === 0)) return this.goAway(H2Error.ProtocolError);
    this.blockEndStream = (flags & Flag.EndStream) !== 0;
    if (id > this.lastStreamId) this.lastStreamId = id;
    if ((flags & Flag.EndHeaders) !== 0) {
      this.headerBlock(id, buf, s, e);
      return;
    }
    this.blockStream = id;
    this.blockParts = [Buffer.from(buf.subarray(s, e))];
    this.blockBytes = e - s;
  }

  private onContinuation(flags: number, id: number, buf: Buffer, s: number, e: number): void {
    if (this.blockStream === 0 || id !== this.blockStream) return this.goAway(H2Error.ProtocolError);
    this.blockBytes += e - s;
    // CONTINUATION floods: a block past twice the header list limit is not waited for.
    if (this.blockBytes > this.settings.maxHeaderListBytes * BLOCK_FACTOR) return this.goAway(H2Error.EnhanceYourCalm);
    this.blockParts.push(Buffer.from(buf.subarray(s, e)));
    if ((flags & Flag.EndHeaders) === 0) return;
    const block = Buffer.concat(this.blockParts);
    this.blockParts = [];
    this.blockStream = 0;
    this.headerBlock(id, block, 0, block.length);
  }

  /** A complete header block: request headers opening a stream, or the trailers of one. */
  private headerBlock(id: number, buf: Buffer, s: number, e: number): void {
    const out: Record<string, string | string[]> = {};
    let malformed = false;
    let regular = false;
    let contentLength = -1;
    const trailers = this.blockIsTrailers;
    const err = this.decoder.decode(buf, s, e, this.settings.maxHeaderListBytes, (name, value) => {
      if (malformed) return;
      if (!validField(name, value)) {
        malformed = true;
        return;
      }
      if (name.charCodeAt(0) === 58) {
        if (regular || trailers || !REQUEST_PSEUDO.has(name) || out[name] !== undefined) malformed = true;
        else out[name] = value;
        return;
      }
      regular = true;
      if (CONNECTION_SPECIFIC.has(name) || (name === 'te' && value !== 'trailers')) {
        malformed = true;
        return;
      }
      if (name === 'content-length') {
        if (!/^[0-9]{1,15}$/.test(value) || (contentLength >= 0 && Number(value) !== contentLength)) {
          malformed = true;
          return;
        }
        contentLength = Number(value);
      }
      const prev = out[name];
      if (prev === undefined) out[name] = value;
      else if (typeof prev === 'string') out[name] = [prev, value];
      else prev.push(value);
    });
    if (err === HpackError.Compression) return this.goAway(H2Error.CompressionError);
    if (trailers) {
      const st = this.streams.get(id);
      if (st === undefined) return;
      if (err !== HpackError.None || malformed) return this.streamError(id, H2Error.ProtocolError);
      // Request trailers end the request body; they are not passed on.
      st.remoteEnded = true;
      if (st.contentLength >= 0 && st.received !== st.contentLength) return this.streamError(id, H2Error.ProtocolError);
      st.deliverEnd();
      this.maybeClose(st);
      return;
    }
    if (this.goingAway) return;
    if (err === HpackError.TooLarge) {
      // HPACK bombs and oversized heads: refused on their stream, like a 431.
      this.rstFrame(id, H2Error.EnhanceYourCalm);
      return;
    }
    const method = out[':method'];
    if (malformed || typeof method !== 'string' || (method !== 'CONNECT' && (typeof out[':scheme'] !== 'string' || typeof out[':path'] !== 'string' || out[':path'] === '')) || out[':protocol'] !== undefined) {
      this.rstFrame(id, H2Error.ProtocolError);
      return;
    }
    if (this.openStreams >= this.settings.maxConcurrentStreams) {
      this.rstFrame(id, H2Error.RefusedStream);
      return;
    }
    const st = new H2ServerStream(id, this, this.peerInitialWindow, this.settings.initialWindow);
    st.contentLength = contentLength;
    this.streams.set(id, st);
    this.openStreams++;
    const end = this.blockEndStream;
    if (end) {
      st.remoteEnded = true;
      if (contentLength > 0) {
        this.streamError(id, H2Error.ProtocolError);
        return;
      }
    }
    this.handler.onStream(st, out, end);
  }

  private onRstStream(id: number, buf: Buffer, s: number, e: number): void {
    if (id === 0) return this.goAway(H2Error.ProtocolError);
    if (e - s !== 4) return this.goAway(H2Error.FrameSizeError);
    const st = this.streams.get(id);
    if (st === undefined) {
      if (id > this.lastStreamId) return this.goAway(H2Error.ProtocolError);
      return;
    }
    // Rapid Reset: streams the client opens and resets before any answer cost upstream work each.
    if (!st.headersSent) {
      const now = this.now();
      this.resetTokens = Math.min(RESET_BURST, this.resetTokens + ((now - this.resetRefillMs) * RESETS_PER_SECOND) / 1000);
      this.resetRefillMs = now;
      if (--this.resetTokens < 0) {
        this.closeStream(st, buf.readUInt32BE(s));
        return this.goAway(H2Error.EnhanceYourCalm);
      }
    }
    this.closeStream(st, buf.readUInt32BE(s));
  }

  private onSettings(flags: number, id: number, buf: Buffer, s: number, e: number): void {
    if (id !== 0) return this.goAway(H2Error.ProtocolError);
    if ((flags & Flag.Ack) !== 0) {
      if (e !== s) return this.goAway(H2Error.FrameSizeError);
      return;
    }
    if ((e - s) % 6 !== 0) return this.goAway(H2Error.FrameSizeError);
    if (!this.countControl()) return;
    for (let p = s; p < e; p += 6) {
      const key = buf.readUInt16BE(p);
      const v = buf.readUInt32BE(p + 2);
      switch (key) {
        case Setting.EnablePush:
          if (v > 1) return this.goAway(H2Error.ProtocolError);
          break;
        case Setting.InitialWindowSize: {
          if (v > MAX_WINDOW) return this.goAway(H2Error.FlowControlError);
          const delta = v - this.peerInitialWindow;
          this.peerInitialWindow = v;
          for (const st of this.streams.values()) {
            st.sendWindow += delta;
            if (st.sendWindow > MAX_WINDOW) return this.goAway(H2Error.FlowControlError);
            if (delta > 0) this.pump(st);
          }
          break;
        }
        case Setting.MaxFrameSize:
          if (v < DEFAULT_MAX_FRAME || v > 16_777_215) return this.goAway(H2Error.ProtocolError);
          this.peerMaxFrame = v;
          break;
        default:
          // HEADER_TABLE_SIZE: our encoder never indexes, so any size suits it. Others: advisory.
          break;
      }
    }
    this.out.frame(FrameType.Settings, Flag.Ack, 0, null);
  }

  private onWindowUpdate(id: number, buf: Buffer, s: number, e: number): void {
    if (e - s !== 4) return this.goAway(H2Error.FrameSizeError);
    const inc = buf.readUInt32BE(s) & 0x7fffffff;
    if (id === 0) {
      if (inc === 0) return this.goAway(H2Error.ProtocolError);
      this.connSendWindow += inc;
      if (this.connSendWindow > MAX_WINDOW) return this.goAway(H2Error.FlowControlError);
      const waiting = [...this.windowWaiters];
      this.windowWaiters.clear();
      for (const st of waiting) this.pump(st as H2ServerStream);
      return;
    }
    const st = this.streams.get(id);
    if (st === undefined) return;
    if (inc === 0) return this.streamError(id, H2Error.ProtocolError);
    st.sendWindow += inc;
    if (st.sendWindow > MAX_WINDOW) return this.streamError(id, H2Error.FlowControlError);
    this.pump(st);
  }

  /** SETTINGS and PING floods; false when the connection was ended for one. */
  private countControl(): boolean {
    const now = this.now();
    if (now - this.controlWindowMs >= 1000) {
      this.controlWindowMs = now;
      this.controlFrames = 0;
    }
    if (++this.controlFrames > CONTROL_FRAMES_PER_SECOND || this.out.pendingBytes > MAX_UNREAD_BYTES) {
      this.goAway(H2Error.EnhanceYourCalm);
      return false;
    }
    return true;
  }

  // ------------------------------------------------------------------ flow control (receiving)

  /** `n` bytes of a stream were taken by its owner (or dropped): the connection window gets them back. */
  consumed(n: number): void {
    this.recv.consume(n);
  }

  creditStream(st: FlowStream): void {
    creditStreamWindow(this.out, st, this.settings.initialWindow);
  }

  // ------------------------------------------------------------------ output

  /** HEADERS (answer or trailers) for `st`, split into CONTINUATION frames past the peer's frame size. */
  sendHeaders(st: H2ServerStream, headers: OutHeaders, endStream: boolean, withStatus: boolean): void {
    const enc = this.encoder;
    enc.begin();
    if (withStatus) enc.status(Number(headers[':status'] ?? 200));
    enc.fields(headers, CONNECTION_SPECIFIC);
    this.out.headers(st.id, enc.end(), endStream, this.peerMaxFrame);
  }

  /** An empty DATA frame with END_STREAM. */
  sendEndData(st: H2ServerStream): void {
    this.out.frame(FrameType.Data, Flag.EndStream, st.id, null);
  }

  /** Sends what the windows allow of a stream's pending answer data; END_STREAM once all went. */
  pump(st: H2ServerStream): void {
    sendPending(this, st);
    this.afterSend(st);
  }

  /** Tells a stream's owner it may write again, once nothing of it waits. */
  afterSend(st: H2ServerStream): void {
    if (st.needsDrain && st.pendingBytes === 0 && !this.out.blocked) {
      st.needsDrain = false;
      st.owner?.onClientDrain();
    }
  }

  private rstFrame(id: number, code: number): void {
    this.out.frame32(FrameType.RstStream, id, code);
  }

  private onDrain(): void {
    for (const st of this.streams.values()) {
      if (st.needsDrain && st.pendingBytes === 0) {
        st.needsDrain = false;
        st.owner?.onClientDrain();
      }
    }
  }

  // ------------------------------------------------------------------ stream and connection ends

  /** A stream-level error: RST_STREAM with `code`, the stream closed. */
  streamError(id: number, code: H2Error): void {
    this.rstFrame(id, code);
    const st = this.streams.get(id);
    if (st !== undefined) this.closeStream(st, code);
  }

  /** Our reset of a stream (the exchange's close()). */
  reset(st: H2ServerStream, code: number): void {
    this.rstFrame(st.id, code);
    this.closeStream(st, code);
  }

  /** Closes a stream whose both sides are done. */
  maybeClose(st: H2ServerStream): void {
    if (st.remoteEnded && st.localEnded && !st.closed) this.closeStream(st, 0);
  }

  private closeStream(st: H2ServerStream, code: number): void {
    if (st.closed) return;
    st.markClosed(code);
    this.windowWaiters.delete(st);
    // Keep the entry until later frames of it cannot come (they are ignored); bounded by the map cleanup.
    this.streams.delete(st.id);
    this.openStreams--;
    st.owner?.onClientClose();
    if (this.goingAway && this.openStreams === 0) this.shutdown();
  }

  /** A connection error: GOAWAY with `code`, then the connection ends. */
  goAway(code: H2Error): void {
    if (this.closedAll) return;
    this.out.frame64(FrameType.GoAway, 0, this.lastStreamId, code);
    this.out.flush();
    this.closeAll();
    this.socket.end();
    // A peer that does not read would hold the socket: it goes after a grace.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** Graceful: GOAWAY(NO_ERROR) now, the connection closes once streams under way are done. */
  drain(): void {
    if (this.goingAway || this.closedAll) return;
    this.goingAway = true;
    this.out.frame64(FrameType.GoAway, 0, this.lastStreamId, H2Error.NoError);
    if (this.openStreams === 0) this.shutdown();
  }

  private shutdown(): void {
    this.out.flush();
    this.closeAll();
    this.socket.end();
  }

  /** The socket closed (or we are ending it): every stream is told, then the handler. */
  closeAll(): void {
    if (this.closedAll) return;
    this.closedAll = true;
    for (const st of [...this.streams.values()]) this.closeStream(st, H2Error.Cancel);
    this.handler.onClose();
  }
}

/** RFC 9113 8.2.1: lower-case token names (or a pseudo-header), no NUL, CR or LF in values and no
 * whitespace at either end. */
function validField(name: string, value: string): boolean {
  const n = name.length;
  if (n === 0) return false;
  for (let i = name.charCodeAt(0) === 58 ? 1 : 0; i < n; i++) if (NAME_OK[name.charCodeAt(i)] !== 1) return false;
  const m = value.length;
  if (m > 0) {
    const a = value.charCodeAt(0);
    const z = value.charCodeAt(m - 1);
    if (a === 32 || a === 9 || z === 32 || z === 9) return false;
    for (let i = 0; i < m; i++) {
      const c = value.charCodeAt(i);
      if (c === 0 || c === 10 || c === 13) return false;
    }
  }
  return true;
}
