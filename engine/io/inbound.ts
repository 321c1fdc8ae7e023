// How an accepted client socket's bytes reach its handler. Where possible the socket reads into a
// buffer of its own (net's `onread`) instead of a fresh allocation per read: measured +15% requests/s
// on a bare relay. A chunk is then valid only during the call that delivers it: a handler keeps
// bytes across reads through retain(), and after writing a slice of a chunk to another socket it
// calls afterWrite(), which stops reading until that socket has flushed the slice.

import * as net from 'node:net';

const READ_BUFFER_BYTES = 4 * 1024;
const EMPTY = Buffer.alloc(0);

/**
 * Read buffers of closed connections, reused by new ones: each is memory outside the JS heap that
 * would otherwise wait for a full GC, and under connection churn that showed as megabytes of RSS.
 */
const freeBuffers: Buffer[] = [];
const MAX_FREE_BUFFERS = 256;

function takeReadBuffer(): Buffer {
  return freeBuffers.pop() ?? Buffer.allocUnsafe(READ_BUFFER_BYTES);
}

type Sink = (chunk: Buffer) => void;

/**
 * Set on sockets whose handle never keeps a reference to the bytes it is given: TLS sockets, whose
 * wrapper encrypts a write at once (or copies it, mid-handshake). A write that reaches the handle
 * directly (nothing else in flight or queued, not still connecting) needs no hold, nor the empty
 * write that detects its flush. A write queued behind another one stays referenced in the
 * socket's JS queue, as on any socket.
 */
export const CONSUMES_WRITES = Symbol('bowline.consumesWrites');

export function markConsumesWrites(s: net.Socket): void {
  (s as unknown as Record<symbol, boolean>)[CONSUMES_WRITES] = true;
}

/** Whether the `written` bytes just written to `dest` may still be referenced by it until it flushes. */
export function writeMayRetain(dest: net.Socket, written: number): boolean {
  const pending = dest.writableLength;
  if (pending === 0) return false;
  // Only the write just made is pending: on a TLS socket it went to the handle and was consumed.
  return (dest as unknown as Record<symbol, boolean>)[CONSUMES_WRITES] !== true || dest.connecting || pending > written;
}

export class Inbound {
  /** Where the client was going when iptables redirected it here (SO_ORIGINAL_DST); null: not redirected. */
  originalDst: [string, number] | null = null;
  /** Where chunks go; handlers replace it as the connection moves on (detection, HTTP/1, TCP). */
  sink: Sink = () => {};
  /** Reads held back until writes of this connection's bytes to another socket are flushed. */
  private holds = 0;
  private pausedByOwner = false;
  private closed = false;

  private constructor(
    readonly socket: net.Socket,
    /** The read buffer when the socket reads into its own; null when chunks are fresh allocations. */
    private readBuffer: Buffer | null,
  ) {}

  /**
   * Takes over a just-accepted socket. Sockets accepted paused (pauseOnConnect) are re-created over
   * the same handle with a read buffer of their own; others keep Node's per-read buffers ('data').
   */
  static adopt(accepted: net.Socket, allowHalfOpen: boolean): Inbound {
    const handle = (accepted as unknown as { _handle: unknown })._handle;
    if (accepted.isPaused() && handle !== null && handle !== undefined && !accepted.readableFlowing) {
      // The first socket object lets go of the handle; destroying it keeps the server's count right.
      (accepted as unknown as { _handle: unknown })._handle = null;
      accepted.destroy();
      return Inbound.fromHandle(handle, allowHalfOpen);
    }
    const inbound = new Inbound(accepted, null);
    accepted.on('data', (chunk: Buffer) => inbound.sink(chunk));
    return inbound;
  }

  /**
   * Takes over a connected socket that is already reading, such as a TLS socket after its handshake,
   * switching it to a read buffer of its own: net's `onread` mode, turned on after construction
   * through the socket's own kBuffer/kBufferCb slots (what `onread` sets) and the handle's
   * useUserBuffer. Measured on mesh TLS: no Buffer and no Readable push per decrypted read. When
   * those internals are not there (another Node version), it falls back to 'data' events.
   */
  static adoptReading(s: net.Socket): Inbound {
    const slots = s as unknown as Record<symbol, unknown>;
    const sym = (name: string): symbol | undefined => Object.getOwnPropertySymbols(s).find((x) => x.description === name);
    const kBuffer = sym('kBuffer');
    const kBufferCb = sym('kBufferCb');
    const kBufferGen = sym('kBufferGen');
    const handle = (s as unknown as { _handle: { useUserBuffer?: (b: Uint8Array) => void } | null })._handle;
    if (kBuffer === undefined || kBufferCb === undefined || kBufferGen === undefined || slots[kBuffer] !== null || slots[kBufferGen] !== null || handle === null || typeof handle.useUserBuffer !== 'function' || s.listenerCount('data') > 0) {
      const inbound = new Inbound(s, null);
      s.on('data', (chunk: Buffer) => inbound.sink(chunk));
      return inbound;
    }
    const readBuffer = takeReadBuffer();
    const inbound = new Inbound(s, readBuffer);
    slots[kBuffer] = readBuffer;
    slots[kBufferCb] = (n: number, buf: Uint8Array): boolean => {
      inbound.sink((buf as Buffer).subarray(0, n));
      return true;
    };
    // TLS decrypts a record in one go and hands it on in buffer-sized pieces without looking at
    // pause(): while a piece is held (its write not flushed), the next one must go elsewhere. After
    // each read Node asks this for the buffer of the next: a fresh one while something is held.
    slots[kBufferGen] = (): Buffer => {
      if (inbound.holds > 0) inbound.readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
      return inbound.readBuffer!;
    };
    handle.useUserBuffer(readBuffer);
    s.once('close', () => {
      inbound.closed = true;
      inbound.recycle();
    });
    // Bytes Node read before the switch wait in the readable buffer: flowing mode hands them on.
    s.on('data', (chunk: Buffer) => inbound.sink(chunk));
    return inbound;
  }

  /** A socket over an accepted handle (see acceptHandles), reading into a buffer of its own. */
  static fromHandle(handle: unknown, allowHalfOpen: boolean): Inbound {
    {
      const readBuffer = takeReadBuffer();
      let self: Inbound | null = null;
      const socket = new net.Socket({
        handle: handle as net.Socket['_handle' & keyof net.Socket],
        allowHalfOpen,
        readable: true,
        writable: true,
        onread: {
          buffer: readBuffer,
          callback: (n: number, buf: Uint8Array): boolean => {
            self!.sink((buf as Buffer).subarray(0, n));
            return true;
          },
        },
      } as net.SocketConstructorOpts);
      self = new Inbound(socket, readBuffer);
      const inbound = self;
      socket.once('close', () => {
        inbound.closed = true;
        inbound.recycle();
      });
      return self;
    }
  }

  /**
   * Makes a listening server hand its accepted handles to `onHandle` instead of wrapping each in a
   * net.Socket first (which the engine would only throw away to re-wrap with a read buffer: one
   * Socket object of garbage per connection, measured as RSS under churn). Returns false when the
   * server's handle does not look as expected; the server then keeps emitting 'connection'.
   */
  static acceptHandles(server: net.Server, onHandle: (handle: unknown) => void): boolean {
    const h = (server as unknown as { _handle?: { onconnection?: unknown } })._handle;
    if (h === undefined || h === null || typeof h.onconnection !== 'function') return false;
    h.onconnection = (err: number, clientHandle: unknown): void => {
      if (err === 0 && clientHandle !== undefined && clientHandle !== null) onHandle(clientHandle);
    };
    return true;
  }

  /** `b` itself when it may be kept across reads, else a copy of it. */
  retain(b: Buffer): Buffer {
    return this.readBuffer !== null && b.buffer === this.readBuffer.buffer ? Buffer.from(b) : b;
  }

  /** True when `b` lies in the read buffer (valid only during the current delivery). */
  isTransient(b: Buffer): boolean {
    return this.readBuffer !== null && b.buffer === this.readBuffer.buffer;
  }

  /**
   * Call after writing a slice of a delivered chunk to `dest`: when `dest` did not take it all, the
   * rest still points into the read buffer, so reading stops until it is flushed.
   */
  afterWrite(dest: net.Socket, written: number): void {
    if (this.readBuffer === null || !writeMayRetain(dest, written)) return;
    this.holds++;
    this.socket.pause();
    dest.write(EMPTY, () => {
      this.holds--;
      if (this.holds === 0) {
        if (this.closed) this.recycle();
        else if (!this.pausedByOwner) this.socket.resume();
      }
    });
  }

  /** Gives the read buffer back once the socket is closed and no write still points into it. */
  private recycle(): void {
    const b = this.readBuffer;
    if (b === null || this.holds !== 0 || !this.closed) return;
    this.readBuffer = null;
    this.sink = () => {};
    if (freeBuffers.length < MAX_FREE_BUFFERS) freeBuffers.push(b);
  }

  /** Back-pressure from the handler (a full destination, too many pipelined bytes). */
  pause(): void {
    this.pausedByOwner = true;
    this.socket.pause();
  }

  resume(): void {
    this.pausedByOwner = false;
    if (this.holds === 0) this.socket.resume();
  }
}
