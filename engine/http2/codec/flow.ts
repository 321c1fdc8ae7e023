// Flow control shared by both sides of the codec (RFC 9113 section 5.2): a stream's outgoing DATA
// waits for the peer's stream and connection windows, and its incoming DATA is held while the
// stream is paused (its window is only credited back for what its owner took).

import { Flag, FrameType } from './frames';
import type { FrameWriter } from './frame-writer';

/** The connection a flow stream belongs to, as flow control needs it. */
export interface FlowConnection {
  connSendWindow: number;
  readonly peerMaxFrame: number;
  /** Streams whose DATA waits for the connection window. */
  readonly windowWaiters: Set<FlowStream>;
  readonly out: FrameWriter;
  readonly blocked: boolean;
  /** `n` bytes of a stream were taken by its owner: credit the connection window. */
  consumed(n: number): void;
  /** Give the stream's window back for what its owner took (not while paused). */
  creditStream(st: FlowStream): void;
}

export abstract class FlowStream {
  /** Peer's window for our DATA on this stream. */
  sendWindow: number;
  /** Our window for the peer's DATA. */
  recvWindow: number;
  /** Peer DATA taken by the owner since the last WINDOW_UPDATE we sent for this stream. */
  recvUnacked = 0;
  pending: Buffer[] = [];
  pendingCbs: ((() => void) | undefined)[] = [];
  pendingOffset = 0;
  pendingBytes = 0;
  /** end() was called: END_STREAM follows the pending data. */
  endQueued = false;
  localEnded = false;
  remoteEnded = false;
  closed = false;
  paused = false;
  /** write() returned false: tell the owner when there is room again. */
  needsDrain = false;
  private held: Buffer[] | null = null;
  private heldEnd = false;
  /** The peer's END_STREAM was given to the owner (not merely received: it may wait behind held data). */
  endTaken = false;

  constructor(
    readonly id: number,
    protected readonly flow: FlowConnection,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  /** Gives a chunk of peer DATA to the owner; false: the owner wants a pause. */
  protected abstract take(chunk: Buffer): boolean;
  /** The peer's side ended (after any held data was taken). */
  protected abstract takeEnd(): void;
  /** All pending DATA went out after end(): END_STREAM (or trailers) now. */
  abstract finishLocal(): void;

  /** Queues outgoing DATA; `flushed` runs once the chunk is no longer referenced. */
  enqueue(chunk: Buffer, flushed?: () => void): boolean {
    if (chunk.length > 0) {
      this.pending.push(chunk);
      this.pendingCbs.push(flushed);
      this.pendingBytes += chunk.length;
      sendPending(this.flow, this);
    } else flushed?.();
    const ok = this.pendingBytes === 0 && !this.flow.blocked;
    if (!ok) this.needsDrain = true;
    return ok;
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
      this.endTaken = true;
      this.takeEnd();
    }
    this.flow.creditStream(this);
  }

  /** Peer DATA (already copied out of the read buffer). */
  deliver(chunk: Buffer): void {
    if (this.paused) {
      (this.held ??= []).push(chunk);
      return;
    }
    this.recvUnacked += chunk.length;
    this.flow.consumed(chunk.length);
    if (!this.take(chunk)) this.paused = true;
    this.flow.creditStream(this);
  }

  /** The peer's END_STREAM: taken now, or after the held data. */
  deliverEnd(): void {
    if (this.paused || this.held !== null) this.heldEnd = true;
    else {
      this.endTaken = true;
      this.takeEnd();
    }
  }

  /** Releases outgoing chunks that will never be sent. */
  dropOutgoing(): void {
    const cbs = this.pendingCbs;
    this.pending = [];
    this.pendingCbs = [];
    this.pendingBytes = 0;
    this.endQueued = false;
    for (const cb of cbs) cb?.();
  }

  /** Releases outgoing chunks that will never be sent, and held ones (their bytes go back to the connection window). */
  dropPending(): void {
    this.dropOutgoing();
    const held = this.held;
    this.held = null;
    if (held !== null) {
      let n = 0;
      for (const c of held) n += c.length;
      this.flow.consumed(n);
    }
  }
}

/**
 * Sends what the windows allow of a stream's pending DATA; the last piece of an ended stream
 * carries END_STREAM when `endInData` (else finishLocal decides: trailers or an empty DATA).
 */
export function sendPending(c: FlowConnection, st: FlowStream, endInData = false): void {
  if (st.closed) return;
  while (st.pendingBytes > 0) {
    const room = Math.min(st.sendWindow, c.connSendWindow, c.peerMaxFrame);
    if (room <= 0) {
      if (c.connSendWindow <= 0) c.windowWaiters.add(st);
      return;
    }
    const chunk = st.pending[0]!;
    const avail = chunk.length - st.pendingOffset;
    const n = Math.min(room, avail);
    const piece = st.pendingOffset === 0 && n === chunk.length ? chunk : chunk.subarray(st.pendingOffset, st.pendingOffset + n);
    st.pendingBytes -= n;
    st.sendWindow -= n;
    c.connSendWindow -= n;
    if (n === avail) {
      st.pending.shift();
      const cb = st.pendingCbs.shift();
      st.pendingOffset = 0;
      const endNow = endInData && st.endQueued && st.pendingBytes === 0;
      // The chunk is released once the writer copied it, or the socket wrote it.
      c.out.data(FrameType.Data, endNow ? Flag.EndStream : 0, st.id, piece, cb);
      if (endNow) {
        st.endQueued = false;
        st.localEnded = true;
      }
    } else {
      c.out.data(FrameType.Data, 0, st.id, piece);
      st.pendingOffset += n;
    }
  }
  if (st.endQueued && !st.localEnded) {
    st.endQueued = false;
    st.finishLocal();
  }
}

/** Our receive window for the whole connection: credited back with one WINDOW_UPDATE per half window. */
export class ConnectionRecvWindow {
  /** What the peer may still send. */
  window: number;
  private unacked = 0;

  constructor(
    private readonly size: number,
    private readonly out: FrameWriter,
  ) {
    this.window = size;
  }

  /** `n` bytes were taken (or dropped): credited once half the window is owed. */
  consume(n: number): void {
    this.unacked += n;
    if (this.unacked >= this.size / 2) {
      this.out.frame32(FrameType.WindowUpdate, 0, this.unacked);
      this.window += this.unacked;
      this.unacked = 0;
    }
  }
}

/**
 * Gives a stream's window back for what its owner took (not while it is paused): once half the
 * window is owed, or once what is left is under half.
 */
export function creditStreamWindow(out: FrameWriter, st: FlowStream, initialWindow: number): void {
  if (st.paused || st.remoteEnded || st.closed || st.recvUnacked === 0) return;
  if (st.recvUnacked >= initialWindow / 2 || st.recvWindow < initialWindow / 2) {
    out.frame32(FrameType.WindowUpdate, st.id, st.recvUnacked);
    st.recvWindow += st.recvUnacked;
    st.recvUnacked = 0;
  }
}
