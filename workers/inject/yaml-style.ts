// The layout a YAML document was written in (indent width, whether block sequences are indented under
// their key, padding inside flow braces), read from the source so that a document re-rendered by the
// yaml library after an edit looks like it did: kubectl writes `- name:` flush with its key, Helm
// charts indent it, and a re-render in the other style would touch every line of the file.

import { type Document, isMap, isPair, isScalar, isSeq, type ToStringOptions, visit } from 'yaml';

/** toString options matching `doc`'s source (the whole text it was parsed from); library defaults where it shows none. */
export function sourceLayout(doc: Document, source: string): ToStringOptions {
  const column = (offset: number): number => offset - (source.lastIndexOf('\n', offset - 1) + 1);
  const indents = new Map<number, number>();
  let seqIndented = 0;
  let seqFlush = 0;
  let padded = 0;
  let tight = 0;
  visit(doc, {
    Pair(_, pair) {
      if (!isPair(pair) || !isScalar(pair.key) || pair.key.range == null) return;
      const keyCol = column(pair.key.range[0]);
      const v = pair.value;
      if (isMap(v) && v.flow !== true && v.items.length > 0 && v.range != null) {
        const d = column(v.range[0]) - keyCol;
        if (d > 0) indents.set(d, (indents.get(d) ?? 0) + 1);
      } else if (isSeq(v) && v.flow !== true && v.items.length > 0 && v.range != null) {
        const d = column(v.range[0]) - keyCol;
        if (d === 0) seqFlush++;
        else if (d > 0) seqIndented++;
      }
    },
    Node(_, node) {
      if ((isMap(node) || isSeq(node)) && node.flow === true && node.items.length > 0 && node.range != null) {
        if (source[node.range[0] + 1] === ' ') padded++;
        else tight++;
      }
    },
  });
  let indent = 2;
  let best = 0;
  for (const [d, n] of indents) if (n > best || (n === best && d < indent)) [indent, best] = [d, n];
  return {
    indent,
    indentSeq: seqIndented >= seqFlush,
    flowCollectionPadding: padded >= tight,
    // Never fold long strings (the library's default folds plain scalars at 80 columns).
    lineWidth: 0,
  };
}
