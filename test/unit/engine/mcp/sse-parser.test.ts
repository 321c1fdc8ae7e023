// Unit tests of the SSE parser: every split of a stream gives the same events, line endings (CR at a
// chunk's end included), BOM, comments, fields, limits, and a cross-check against eventsource-parser on
// seeded random streams.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createParser } from 'eventsource-parser';
import { formatSseEvent, SseParser, type SseEvent } from '../../../../engine/mcp/sse-parser';
import { fuzzSeeds, Prng, splitAt } from '../../../helpers/prng';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

/** Parses the pieces in order, then ends the stream; returns the events and whether every push succeeded. */
function parse(pieces: Buffer[], max?: number): { events: SseEvent[]; ok: boolean; parser: SseParser } {
  const events: SseEvent[] = [];
  const parser = new SseParser((ev) => events.push(ev), max);
  let ok = true;
  for (const piece of pieces) ok = parser.push(piece) && ok;
  parser.end();
  return { events, ok, parser };
}

function whole(s: string | Buffer): SseEvent[] {
  return parse([typeof s === 'string' ? b(s) : s]).events;
}

function ev(data: string, over: Partial<SseEvent> = {}): SseEvent {
  return { id: null, event: '', data, retry: -1, ...over };
}


/** Asserts that the whole stream, every two-piece split and one byte per push all give `expected`. */
function allSplits(stream: Buffer, expected: SseEvent[]): void {
  assert.deepEqual(parse([stream]).events, expected, 'whole');
  for (let i = 0; i <= stream.length; i++) assert.deepEqual(parse(splitAt(stream, [i])).events, expected, `split at ${i}`);
  const bytes: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) bytes.push(stream.subarray(i, i + 1));
  assert.deepEqual(parse(bytes).events, expected, 'bytewise');
  // Three pieces with an empty one in the middle.
  for (let i = 0; i <= stream.length; i += 7) {
    assert.deepEqual(parse([stream.subarray(0, i), Buffer.alloc(0), stream.subarray(i)]).events, expected, `empty push at ${i}`);
  }
}

const SAMPLE = b(
  '\ufeff: hello comment\r\n' +
    'retry: 2500\n' +
    'event: message\n' +
    'id: 1\n' +
    'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n' +
    'data: first\r\n' +
    'data:second\r' +
    'data:  third with space\r\n' +
    'id\n' +
    '\r\n' +
    'event: ping\n\n' + // no data: not dispatched, and resets the type
    'data: after ping\n' +
    'unknown: field\n' +
    'data\n' +
    '\r' +
    'data: é€😀中\n' +
    'id: a\0b\n' +
    'id: 7\n' +
    'event: custom\n' +
    '\n' +
    'data: incomplete at the end\n',
);

const SAMPLE_EVENTS: SseEvent[] = [
  ev('{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}', { id: '1', event: 'message', retry: 2500 }),
  ev('first\nsecond\n third with space', { id: '' }),
  ev('after ping\n'),
  ev('é€😀中', { id: '7', event: 'custom' }),
];

describe('SseParser', () => {
  test('every split of a sample stream gives the same events', () => {
    allSplits(SAMPLE, SAMPLE_EVENTS);
  });

  test('line endings: LF, CR, CRLF, and a CR at the end of one chunk with the LF starting the next', () => {
    const expected = [ev('a\nb'), ev('c')];
    for (const eol of ['\n', '\r', '\r\n']) {
      assert.deepEqual(whole(`data: a${eol}data: b${eol}${eol}data: c${eol}${eol}`), expected, JSON.stringify(eol));
    }
    assert.deepEqual(parse([b('data: a\r'), b('\ndata: b\r'), b('\n\r'), b('\n')]).events, [ev('a\nb')]);
    // A CR ending a chunk, then a chunk that does not start with LF: two line endings, not one.
    assert.deepEqual(parse([b('data: a\r'), b('\r'), b('data: b\n\n')]).events, [ev('a'), ev('b')]);
    // CR CR LF: a line ended by CR, then a blank line ended by CRLF.
    assert.deepEqual(whole('data: a\r\r\ndata: b\n\n'), [ev('a'), ev('b')]);
    // LF CR: two line endings.
    assert.deepEqual(whole('data: a\n\rdata: b\n\n'), [ev('a'), ev('b')]);
  });

  test('a leading BOM is skipped, whole or split; only at the start of the stream', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const body = b('data: x\n\n');
    const stream = Buffer.concat([bom, body]);
    allSplits(stream, [ev('x')]);
    // A second BOM is part of the first line: the field name is then "\ufeffdata", unknown.
    assert.deepEqual(whole(Buffer.concat([bom, bom, body])), []);
    assert.deepEqual(whole(Buffer.concat([bom, b('data: x\n'), bom, b('data: y\n\n')])), [ev('x')]);
    // A partial BOM followed by something else is line content, split or not.
    const partial = Buffer.concat([Buffer.from([0xef, 0xbb]), b('\ndata: y\n\n')]);
    allSplits(partial, [ev('y')]);
    const p = new SseParser(() => undefined);
    p.push(Buffer.from([0xef, 0xbb]));
    assert.equal(p.heldBytes, 2);
    p.push(Buffer.from([0xbf]));
    assert.equal(p.heldBytes, 0);
    // After end() the next stream may start with a BOM again.
    const events: SseEvent[] = [];
    const q = new SseParser((e) => events.push(e));
    q.push(stream);
    q.end();
    q.push(stream);
    assert.deepEqual(events, [ev('x'), ev('x')]);
  });

  test('comments are ignored, with or without a space, and do not dispatch', () => {
    assert.deepEqual(whole(':\n: keep-alive\ndata: a\n:comment: with colon\ndata: b\n\n:\n\n'), [ev('a\nb')]);
  });

  test('fields: one space after the colon removed, no colon means empty value, names are exact', () => {
    assert.deepEqual(whole('data:no space\n\n'), [ev('no space')]);
    assert.deepEqual(whole('data:  two spaces\n\n'), [ev(' two spaces')]);
    assert.deepEqual(whole('data:\tTab\n\n'), [ev('\tTab')]);
    assert.deepEqual(whole('data\n\n'), [ev('')]);
    assert.deepEqual(whole('data:\n\n'), [ev('')]);
    assert.deepEqual(whole('data\ndata\n\n'), [ev('\n')]);
    assert.deepEqual(whole('data: a:b:c\n\n'), [ev('a:b:c')]);
    // Not the data field: case, trailing space in the name, longer names.
    assert.deepEqual(whole('Data: x\ndata : x\ndatas: x\nDATA: x\n\n'), []);
    assert.deepEqual(whole('event\ndata: x\n\n'), [ev('x')]);
    assert.deepEqual(whole('event: \ndata: x\n\n'), [ev('x')]);
    assert.deepEqual(whole('event: a\nevent: b\ndata: x\n\n'), [ev('x', { event: 'b' })]);
  });

  test('multi-line data is joined with LF; the last LF is removed', () => {
    assert.deepEqual(whole('data: line 1\ndata: line 2\ndata:\ndata: line 4\n\n'), [ev('line 1\nline 2\n\nline 4')]);
  });

  test('a block without data is not dispatched, but resets the event type, id and retry', () => {
    assert.deepEqual(whole('event: e\nid: 1\nretry: 5\n\ndata: x\n\n'), [ev('x')]);
    assert.deepEqual(whole('\n\n\n\r\n'), []);
  });

  test('the id is the id field of this event: null without one, not carried over', () => {
    assert.deepEqual(whole('id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid:\ndata: d\n\n'), [
      ev('a', { id: '1' }),
      ev('b'),
      ev('c', { id: '' }),
      ev('d', { id: '' }),
    ]);
  });

  test('an id containing NUL is ignored; the last valid id of the block counts', () => {
    assert.deepEqual(whole('id: 3\nid: x\0y\ndata: a\n\nid: \0\ndata: b\n\n'), [ev('a', { id: '3' }), ev('b')]);
  });

  test('retry: ASCII digits only, the last valid one of the block', () => {
    const r = (v: string): number => whole(`retry${v}\ndata: x\n\n`)[0].retry;
    assert.equal(r(': 1000'), 1000);
    assert.equal(r(':0'), 0);
    assert.equal(r(': 007'), 7);
    assert.equal(r(': 99999999999999999999'), 1e20);
    for (const bad of ['', ':', ': ', ': -1', ': 1.5', ': 10a', ': +5', ':  5', ': 5 ', ': ５']) assert.equal(r(bad), -1, bad);
    assert.equal(whole('retry: 10\nretry: x\ndata: a\n\n')[0].retry, 10);
    assert.equal(whole('retry: 10\nretry: 20\ndata: a\n\n')[0].retry, 20);
  });

  test('UTF-8 characters split across chunks are decoded whole', () => {
    const stream = b('id: ☃\nevent: 🎉\ndata: ünï€😀中\ndata: 🙂\n\n');
    allSplits(stream, [ev('ünï€😀中\n🙂', { id: '☃', event: '🎉' })]);
  });

  test('ASCII and non-ASCII parts of one line, in either order and chunk', () => {
    assert.deepEqual(parse([b('data: ab'), b('cé\n\n')]).events, [ev('abcé')]);
    assert.deepEqual(parse([b('data: é'), b('xy\n\n')]).events, [ev('éxy')]);
    assert.deepEqual(parse([b('data: é\n\ndata: a'), b('b\n'), b('id: ü\ndata: c\n\n')]).events, [ev('é'), ev('ab\nc', { id: 'ü' })]);
    assert.deepEqual(parse([b('data: a\n'), Buffer.from([0x64, 0x61, 0x74, 0x61, 0x3a, 0xc3]), Buffer.from([0xa9, 0x0a, 0x0a])]).events, [ev('a\né')]);
    // Chunks of 128 bytes and more are checked for ASCII (values then made as latin1): mix both kinds.
    const pad = `: ${'p'.repeat(200)}\n`;
    const stream = b(`${pad}data: ab\nid: x\n\n${pad}data: é\nevent: ü\n\n${pad}data: cd\ndata: 😀${'q'.repeat(150)}\n\n${pad}`);
    allSplits(stream, [ev('ab', { id: 'x' }), ev('é', { event: 'ü' }), ev(`cd\n😀${'q'.repeat(150)}`)]);
  });

  test('an incomplete event or line at the end is discarded', () => {
    assert.deepEqual(whole('data: a\n\ndata: b\n'), [ev('a')]);
    assert.deepEqual(whole('data: a\n\ndata: b'), [ev('a')]);
    const { parser } = parse([b('data: a\ndata: b')]);
    assert.equal(parser.heldBytes, 0);
  });

  test('heldBytes counts the partial line and the data of the incomplete event', () => {
    const p = new SseParser(() => undefined);
    assert.equal(p.heldBytes, 0);
    p.push(b('data: abc\nda'));
    assert.equal(p.heldBytes, 4 + 2);
    p.push(b('ta: xy\n\n'));
    assert.equal(p.heldBytes, 0);
    p.push(b(': a long comment without end'));
    assert.equal(p.heldBytes, 28);
  });

  test('input buffers are not kept: changing a chunk after push does not change the events', () => {
    const events: SseEvent[] = [];
    const p = new SseParser((e) => events.push(e));
    const c1 = b('data: hel');
    const c2 = b('lo\nid: 12');
    p.push(c1);
    c1.fill(0x78);
    p.push(c2);
    c2.fill(0x78);
    p.push(b('\n\n'));
    assert.deepEqual(events, [ev('hello', { id: '12' })]);
  });

  test('maxEventBytes: an event whose data grows past it fails the parser', () => {
    const stream = b(`data: ${'a'.repeat(40)}\n\ndata: ${'b'.repeat(60)}\ndata: ${'c'.repeat(60)}\n\ndata: late\n\n`);
    for (let i = 0; i <= stream.length; i++) {
      const r = parse(splitAt(stream, [i]), 100);
      assert.deepEqual(r.events, [ev('a'.repeat(40))], `split at ${i}`);
      assert.equal(r.ok, false);
      assert.equal(r.parser.failed, true);
    }
    // Exactly at the limit is fine: two lines of 49 bytes + LF each.
    const x49 = 'x'.repeat(49);
    assert.deepEqual(parse([b(`data:${x49}\ndata:${x49}\n\n`)], 100).events, [ev(`${x49}\n${x49}`)]);
    assert.equal(parse([b(`data:${x49}x\ndata:${x49}\n\n`)], 100).ok, false);
  });

  test('maxEventBytes: a line longer than it fails, whole or held across chunks; reset() recovers', () => {
    // The line's own length counts (not its terminator): 100 bytes pass, 101 fail, whole or split.
    for (const [n, ok] of [[98, true], [99, false]] as const) {
      const stream = b(`: ${'z'.repeat(n)}\r\ndata: after\n\n`);
      for (let i = 0; i <= stream.length; i++) assert.equal(parse(splitAt(stream, [i]), 100).ok, ok, `${n} split at ${i}`);
    }
    const events: SseEvent[] = [];
    const p = new SseParser((e) => events.push(e), 100);
    assert.equal(p.push(b('data: ok\n\n: ')), true);
    assert.equal(p.push(b('z'.repeat(60))), true);
    assert.equal(p.heldBytes, 62);
    assert.equal(p.push(b('z'.repeat(60))), false);
    assert.equal(p.failed, true);
    assert.equal(p.heldBytes, 0);
    assert.equal(p.push(b('\n\ndata: ignored\n\n')), false);
    p.reset();
    assert.equal(p.failed, false);
    assert.equal(p.push(b('data: again\n\n')), true);
    assert.deepEqual(events, [ev('ok'), ev('again')]);
  });

  test('an exception from the callback leaves the parser usable', () => {
    const events: SseEvent[] = [];
    const p = new SseParser((e) => {
      events.push(e);
      if (e.data === 'boom') throw new Error('boom');
    });
    assert.throws(() => p.push(b('data: boom\n\n')), /boom/);
    p.push(b('data: next\n\n'));
    assert.deepEqual(events.map((e) => e.data), ['boom', 'next']);
  });

  test('formatSseEvent writes what the parser reads back', () => {
    const cases: SseEvent[] = [
      ev('x'),
      ev(''),
      ev('a\nb\n\nc', { id: '42', event: 'message', retry: 3000 }),
      ev(' leading space', { id: '' }),
      ev('ünï€😀', { event: 'é' }),
      ev('\n'),
    ];
    for (const c of cases) assert.deepEqual(whole(formatSseEvent(c)), [c], JSON.stringify(c));
    assert.equal(formatSseEvent(ev('a\nb', { id: '1', event: 'e', retry: 5 })).toString(), 'id: 1\nevent: e\nretry: 5\ndata: a\ndata: b\n\n');
    assert.deepEqual(whole(formatSseEvent(ev('a\r\nb\rc'))), [ev('a\nb\nc')]);
    assert.throws(() => formatSseEvent(ev('x', { id: 'a\nb' })), TypeError);
    assert.throws(() => formatSseEvent(ev('x', { id: 'a\0b' })), TypeError);
    assert.throws(() => formatSseEvent(ev('x', { event: 'a\rb' })), TypeError);
    assert.throws(() => formatSseEvent(ev('x', { retry: 1.5 })), TypeError);
  });
});

// ---- cross-check against eventsource-parser on random streams ----

const ALPHABET = 'abcXYZ019 :;{}",[]\t-_.é€😀中\0';
const EOLS = ['\n', '\r', '\r\n'];

function randomValue(rng: Prng): string {
  // Some long values, so that chunks reach the size where SseParser checks them for ASCII.
  const n = rng.chance(0.1) ? 0 : rng.chance(0.1) ? rng.range(100, 300) : rng.range(1, 30);
  let s = '';
  for (let i = 0; i < n; i++) s += [...ALPHABET][rng.int([...ALPHABET].length)];
  return s;
}

/** A random stream: blocks of fields, comments and unknown lines with random line endings. Retry lines
 *  only appear in blocks with a data line (eventsource-parser reports retry apart from the events). */
function randomStream(rng: Prng): string {
  let s = rng.chance(0.3) ? '\ufeff' : '';
  const eol = (): string => (rng.chance(0.7) ? rng.pick(EOLS) : EOLS[0]);
  for (let blocks = rng.range(0, 12); blocks > 0; blocks--) {
    const hasData = rng.chance(0.85);
    const lines: string[] = [];
    if (hasData) for (let k = rng.range(1, 3); k > 0; k--) lines.push(rng.chance(0.1) ? 'data' : `data:${rng.chance(0.7) ? ' ' : ''}${randomValue(rng)}`);
    for (let k = rng.range(0, 4); k > 0; k--) {
      const kind = rng.int(hasData ? 7 : 6);
      if (kind === 0) lines.push(`event:${rng.chance(0.5) ? ' ' : ''}${rng.chance(0.5) ? 'message' : randomValue(rng)}`);
      else if (kind === 1) lines.push(rng.chance(0.1) ? 'id' : `id: ${randomValue(rng)}`);
      else if (kind === 2) lines.push(`:${randomValue(rng)}`);
      else if (kind === 3) lines.push(`${rng.pick(['foo', 'Data', 'data ', 'ev', 'idx', 'retr'])}: ${randomValue(rng)}`);
      else if (kind === 4) lines.push(`data: ${randomValue(rng)}`);
      else if (kind === 5) lines.push(rng.pick(['', ':']) + randomValue(rng).replace(/:/g, ''));
      else lines.push(`retry: ${rng.chance(0.7) ? String(rng.int(100000)) : randomValue(rng)}`);
    }
    // Shuffle so that data, ids and types come in any order.
    for (let i = lines.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [lines[i], lines[j]] = [lines[j], lines[i]];
    }
    // A line made of nothing would be a blank line: drop them inside the block.
    for (const l of lines) if (l !== '') s += l + eol();
    if (blocks > 1 || rng.chance(0.7)) s += eol();
  }
  return s;
}

/**
 * What eventsource-parser reports, mapped to SseEvent, fed with strings from a streaming TextDecoder.
 * One known difference is bridged: eventsource-parser holds a CR that ends the input (waiting to see
 * whether an LF follows) and never processes it, while the spec (and SseParser) ends the line at the CR;
 * an LF is fed after such a CR, which makes it a CRLF with the same meaning.
 */
function reference(pieces: Buffer[]): SseEvent[] {
  const out: SseEvent[] = [];
  let retry = -1;
  const parser = createParser({
    onEvent: (m) => {
      out.push({ id: m.id ?? null, event: m.event ?? '', data: m.data, retry });
      retry = -1;
    },
    onRetry: (ms) => {
      retry = ms;
    },
  });
  const dec = new TextDecoder();
  for (const piece of pieces) parser.feed(dec.decode(piece, { stream: true }));
  parser.feed(dec.decode());
  const all = Buffer.concat(pieces);
  if (all.length > 0 && all[all.length - 1] === 0x0d) parser.feed('\n');
  return out;
}

describe('SseParser against eventsource-parser', () => {
  for (const seed of fuzzSeeds([1, 2, 3, 4])) {
    test(`random streams, random splits (seed ${seed})`, () => {
      const rng = new Prng(seed);
      let events = 0;
      for (let i = 0; i < 300; i++) {
        const stream = b(randomStream(rng));
        const pieces = splitAt(stream, rng.cuts(stream.length, rng.range(0, 12)));
        const expected = reference(pieces);
        const got = parse(pieces);
        assert.equal(got.ok, true);
        assert.deepEqual(got.events, expected, `seed ${seed} case ${i}: ${JSON.stringify(stream.toString())}`);
        assert.deepEqual(parse([stream]).events, expected, `seed ${seed} case ${i} whole`);
        events += expected.length;
      }
      assert.ok(events > 1000, `only ${events} events: the generator should make many`);
    });
  }
});
