// The output side of one HTTP/2 connection (client or server): frames are staged into a small
// buffer (large DATA payloads go by reference, in order) and leave in one write (a writev when
// there are several pieces) once per turn of the event loop, so that answers to many streams,
// arriving from many upstream reads, share a syscall (and, under TLS, a record).

import type * as net from 'node:net';
import { Flag, FrameType, writeFrameHeader } from './frames';

const STAGING_BYTES = 4096;
/** DATA payloads up to this size are copied into the staging buffer; larger ones go by reference. */
const COPY_LIMIT = 1024;

export class FrameWriter {
  /** The staging buffer; `reserve()` returns where a caller may write in it. */
  staging = Buffer.allocUnsafe(STAGING_BYTES);
  private stagingStart = 0;
  private w = 0;
  private readonly out: Buffer[] = [];
  /** Per piece of `out`: called once the socket has written it (large payloads by reference). */
  private readonly outCbs: ((() => void) | undefined)[] = [];
  private flushScheduled = false;
  /** The socket's write returned false: callers wait for onDrain. */
  blocked = false;

  constructor(
    private readonly socket: net.Socket,
    onDrain: () => void,
  ) {
    socket.on('drain', () => {
      this.blocked = false;
      onDrain();
    });
  }

  /** Room for `n` bytes in the staging buffer; returns where they go. */
  reserve(n: number): number {
    if (this.w + n > this.staging.length) {
      if (this.w > this.stagingStart) this.push(this.staging.subarray(this.stagingStart, this.w), undefined);
      this.staging = Buffer.allocUnsafe(Math.max(STAGING_BYTES, n));
      this.stagingStart = this.w = 0;
    }
    const at = this.w;
    this.w += n;
    this.scheduleFlush();
    return at;
  }

  /** A frame whose payload is buf[s, e) (copied). */
  frame(type: FrameType, flags: number, id: number, buf: Buffer | null, s = 0, e = 0): void {
    const b = this.reserve(9 + (e - s));
    writeFrameHeader(this.staging, b, e - s, type, flags, id);
    if (buf !== null && e > s) buf.copy(this.staging, b + 9, s, e);
  }

  /**
   * A DATA frame: small payloads are copied (`written` runs at once), large ones referenced until
   * the socket has written them (`written` runs then).
   */
  data(type: FrameType, flags: number, id: number, payload: Buffer, written?: () => void): void {
    const n = payload.length;
    if (n <= COPY_LIMIT) {
      this.frame(type, flags, id, payload, 0, n);
      written?.();
      return;
    }
    const b = this.reserve(9);
    writeFrameHeader(this.staging, b, n, type, flags, id);
    this.push(this.staging.subarray(this.stagingStart, this.w), undefined);
    this.stagingStart = this.w;
    this.push(payload, written);
  }

  private push(b: Buffer, cb: (() => void) | undefined): void {
    this.out.push(b);
    this.outCbs.push(cb);
  }

  /** A SETTINGS frame with these [identifier, value] pairs. */
  settings(pairs: readonly (readonly [number, number])[]): void {
    const at = this.reserve(9 + pairs.length * 6);
    const st = this.staging;
    writeFrameHeader(st, at, pairs.length * 6, FrameType.Settings, 0, 0);
    let p = at + 9;
    for (const [id, v] of pairs) {
      st.writeUInt16BE(id, p);
      st.writeUInt32BE(v, p + 2);
      p += 6;
    }
  }

  /** A header block as HEADERS, then CONTINUATION frames past the peer's frame size. */
  headers(id: number, block: Buffer, endStream: boolean, maxFrame: number): void {
    let off = 0;
    let first = true;
    do {
      const n = Math.min(maxFrame, block.length - off);
      const last = off + n >= block.length;
      this.frame(first ? FrameType.Headers : FrameType.Continuation, (first && endStream ? Flag.EndStream : 0) | (last ? Flag.EndHeaders : 0), id, block, off, off + n);
      off += n;
      first = false;
    } while (off < block.length);
  }

  /** A frame with a 4-byte payload (WINDOW_UPDATE, RST_STREAM). */
  frame32(type: FrameType, id: number, v: number): void {
    const b = this.reserve(13);
    writeFrameHeader(this.staging, b, 4, type, 0, id);
    this.staging.writeUInt32BE(v >>> 0, b + 9);
  }

  /** A frame with an 8-byte payload of two words (GOAWAY). */
  frame64(type: FrameType, id: number, a: number, b2: number): void {
    const b = this.reserve(17);
    writeFrameHeader(this.staging, b, 8, type, 0, id);
    this.staging.writeUInt32BE(a >>> 0, b + 9);
    this.staging.writeUInt32BE(b2 >>> 0, b + 13);
  }

  /** Room left on the socket before it stops taking writes. */
  get pendingBytes(): number {
    return this.socket.writableLength;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(flushWriter, this);
  }

  flush(): void {
    this.flushScheduled = false;
    if (this.w > this.stagingStart) {
      this.push(this.staging.subarray(this.stagingStart, this.w), undefined);
      // The staged bytes belong to the socket until written: a fresh buffer for what follows.
      this.staging = Buffer.allocUnsafe(STAGING_BYTES);
      this.stagingStart = this.w = 0;
    }
    const out = this.out;
    const cbs = this.outCbs;
    if (out.length === 0) return;
    const s = this.socket;
    if (s.destroyed) {
      out.length = 0;
      // Nothing will be written: what was held for it is released.
      for (const cb of cbs.splice(0)) cb?.();
      return;
    }
    let ok: boolean;
    if (out.length === 1) ok = cbs[0] === undefined ? s.write(out[0]!) : s.write(out[0]!, cbs[0]);
    else {
      s.cork();
      for (let i = 0; i < out.length; i++) {
        const cb = cbs[i];
        if (cb === undefined) s.write(out[i]!);
        else s.write(out[i]!, cb);
      }
      s.uncork();
      ok = s.writableLength < s.writableHighWaterMark;
    }
    out.length = 0;
    cbs.length = 0;
    if (!ok) this.blocked = true;
  }
}

function flushWriter(w: FrameWriter): void {
  w.flush();
}
