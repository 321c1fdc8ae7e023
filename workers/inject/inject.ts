// `bowline inject`: adds the Bowline sidecar to the workloads in a stream of Kubernetes manifests, as
// `linkerd inject` does. A document left as it was is copied byte for byte; a changed one is
// re-rendered from the yaml library's document model, which keeps comments, key order and scalar
// styles, in the layout its source was written in (yaml-style.ts).

import { Composer, CST, type Document, isMap, isScalar, isSeq, LineCounter, Parser, type YAMLMap } from 'yaml';
import { patchPodTemplate } from './patch-pod';
import { annotation, findWorkload, type Workload } from './pod-template';
import { ANNOTATION, initContainer, type InjectOptions, parsePortList, type PodSettings, proxyContainer, sidecarVolumes } from './sidecar';
import { sourceLayout } from './yaml-style';

export class InjectError extends Error {
  override readonly name = 'InjectError';
}

/** One workload met in the stream. */
export interface InjectReport {
  /** The document's position in the stream (from 1) and the line it starts on. */
  document: number;
  line: number;
  /** Its index in a List's items. */
  item?: number;
  kind: string;
  name: string;
  /** Why it was left as it was; absent when the proxy was added. */
  skipped?: string;
}

// YAML 1.1, as Kubernetes reads manifests (go-yaml): `0644` stays an octal file mode and `yes` a
// boolean when a changed document is written again. Big integers are kept exact.
const PARSE_OPTIONS = { version: '1.1', intAsBigInt: true } as const;

interface Chunk {
  /** The source of one document with the comments and markers around it that the parser gives it. */
  text: string;
  line: number;
}

export function injectManifests(text: string, o: InjectOptions): { output: string; reports: InjectReport[] } {
  // The CST keeps every byte, so a document's own text can be copied out; the composer turns the
  // same tokens into documents. Comments and directives before a document belong to it, those
  // before a `...` or at the end of the stream to the document before (as the composer decides).
  const chunks: Chunk[] = [];
  const docs: Document[] = [];
  const composer = new Composer(PARSE_OPTIONS);
  const lines = new LineCounter();
  let pending = '';
  for (const token of new Parser(lines.addNewLine).parse(text)) {
    const raw = CST.stringify(token);
    if (token.type === 'document') {
      chunks.push({ text: pending + raw, line: lines.linePos(token.offset).line });
      pending = '';
    } else if (token.type === 'doc-end' && chunks.length > 0) {
      chunks[chunks.length - 1]!.text += pending + raw;
      pending = '';
    } else {
      pending += raw;
    }
    for (const d of composer.next(token)) docs.push(d);
  }
  for (const d of composer.end()) docs.push(d);
  if (chunks.length === 0) {
    const e = docs.find((d) => d.errors.length > 0)?.errors[0];
    if (e !== undefined) throw new InjectError(`not YAML: ${e.message}`);
    return { output: text, reports: [] }; // nothing but comments
  }
  chunks[chunks.length - 1]!.text += pending;

  const reports: InjectReport[] = [];
  const out: string[] = [];
  chunks.forEach((chunk, i) => {
    const doc = docs[i]!;
    const at = `document ${i + 1} (line ${chunk.line})`;
    const error = doc.errors[0];
    if (error !== undefined) {
      const p = lines.linePos(error.pos[0]);
      throw new InjectError(`${at}: not YAML: at line ${p.line}, column ${p.col}: ${error.message}`);
    }
    try {
      out.push(injectDocument(doc, text, o, { document: i + 1, line: chunk.line }, reports) ?? chunk.text);
    } catch (e) {
      throw new InjectError(`${at}: ${(e as Error).message}`);
    }
  });
  return { output: out.join(''), reports };
}

/** The document's new text, or null when it stays as it was. */
function injectDocument(doc: Document, source: string, o: InjectOptions, at: { document: number; line: number }, reports: InjectReport[]): string | null {
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return null; // an empty document
  if (!isMap(root)) throw new Error(`not a Kubernetes object (a ${isSeq(root) ? 'list' : 'scalar'} where a map was expected)`);
  // Rendering before and after the edit tells a real change from a re-injection that put back what
  // was there: the source is then kept as it is, byte for byte.
  const layout = sourceLayout(doc, source);
  const before = doc.toString(layout);
  let touched = false;
  if (root.get('kind') === 'List') {
    const items = root.get('items', true);
    if (items === undefined || items === null) return null;
    if (!isSeq(items)) throw new Error('items of a List is not a list');
    items.items.forEach((item, i) => {
      if (!isMap(item)) throw new Error(`items[${i}]: not a Kubernetes object`);
      try {
        touched = injectObject(doc, item, o, { ...at, item: i }, reports) || touched;
      } catch (e) {
        throw new Error(`items[${i}]: ${(e as Error).message}`);
      }
    });
  } else {
    touched = injectObject(doc, root, o, at, reports);
  }
  if (!touched) return null;
  const after = doc.toString(layout);
  if (after === before) return null;
  return root.flow === true && source[root.range![0]] === '{' ? jsonText(doc, source.slice(root.range![0])) : after;
}

/**
 * A JSON document (`kubectl get -o json | bowline inject -`) is written back as JSON, indented as it
 * was, since whoever reads it next may expect JSON. (Integers past 2^53 would lose precision; no
 * Kubernetes field holds one.)
 */
function jsonText(doc: Document, source: string): string {
  const indent = /^\{[ \t]*\r?\n([ \t]+)/.exec(source)?.[1] ?? '';
  return `${JSON.stringify(doc.toJS(), (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v), indent)}\n`;
}

/** Adds the sidecar to one object when it is a workload that wants it; true when the document changed. */
function injectObject(doc: Document, obj: YAMLMap, o: InjectOptions, at: Pick<InjectReport, 'document' | 'line' | 'item'>, reports: InjectReport[]): boolean {
  const w = findWorkload(obj);
  if (w === null) return false;
  const report: InjectReport = { ...at, kind: w.kind, name: w.name };
  try {
    const mode = annotation(w, ANNOTATION.inject);
    if (mode === 'disabled') {
      reports.push({ ...report, skipped: `${ANNOTATION.inject}: disabled` });
      return false;
    }
    if (mode !== undefined && mode !== 'enabled') throw new Error(`annotation ${ANNOTATION.inject}: "${mode}" is neither "enabled" nor "disabled"`);
    if (w.template.getIn(['spec', 'hostNetwork']) === true) {
      // Its network namespace is the node's: bowline-init would redirect the node's own traffic.
      reports.push({ ...report, skipped: 'hostNetwork: true' });
      return false;
    }
    const s = podSettings(w, o);
    patchPodTemplate(doc, w.template, { init: initContainer(o, s), proxy: proxyContainer(o, s), volumes: sidecarVolumes(), native: s.native }, w.templatePath);
  } catch (e) {
    throw new Error(`${w.kind} ${w.name || '(no name)'}: ${(e as Error).message}`);
  }
  reports.push(report);
  return true;
}

function podSettings(w: Workload, o: InjectOptions): PodSettings {
  const ports = (key: string): number[] => {
    const v = annotation(w, key);
    return v === undefined ? [] : parsePortList(key, v);
  };
  return {
    skipInboundPorts: ports(ANNOTATION.skipInboundPorts),
    skipOutboundPorts: ports(ANNOTATION.skipOutboundPorts),
    opaquePorts: ports(ANNOTATION.opaquePorts),
    native: o.nativeSidecar || w.runsToCompletion,
  };
}

/** A line for the user about one workload, as `linkerd inject` prints them. */
export function describeReport(r: InjectReport): string {
  const where = r.item === undefined ? '' : ` (items[${r.item}])`;
  return `${r.kind.toLowerCase()} "${r.name}"${where} ${r.skipped === undefined ? 'injected' : `skipped: ${r.skipped}`}`;
}
