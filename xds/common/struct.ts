// google.protobuf.Struct in protobufjs's object form ({ fields: { k: { stringValue } } }) to and from
// plain JSON values: Bowline's own settings travel in `metadata.filter_metadata["io.bowline"]` of
// clusters, routes and listeners, beside the Envoy fields that carry the same meaning where one exists.

export const BOWLINE_METADATA = 'io.bowline';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface StructValue {
  nullValue?: string;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: StructObject;
  listValue?: { values?: StructValue[] };
}

export interface StructObject {
  fields?: Record<string, StructValue>;
}

export function toStruct(o: Record<string, unknown>): StructObject {
  const fields: Record<string, StructValue> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) fields[k] = toValue(v as Json);
  return { fields };
}

function toValue(v: Json): StructValue {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v) };
}

export function fromStruct(s: StructObject | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = fromValue(v);
  return out;
}

function fromValue(v: StructValue): unknown {
  if (v.structValue !== undefined) return fromStruct(v.structValue);
  if (v.listValue !== undefined) return (v.listValue.values ?? []).map(fromValue);
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.numberValue !== undefined) return v.numberValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return null;
}

/** Bowline's settings from a resource's metadata, or {} (resources from other control planes have none). */
export function bowlineMetadata(metadata: { filter_metadata?: Record<string, StructObject> } | undefined): Record<string, unknown> {
  return fromStruct(metadata?.filter_metadata?.[BOWLINE_METADATA]);
}

/** A duration in ms as a google.protobuf.Duration object. */
export function duration(ms: number): { seconds: number; nanos: number } {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

/** A google.protobuf.Duration object (seconds may be a string: int64) in ms; undefined stays undefined. */
export function durationMs(d: { seconds?: string | number; nanos?: number } | undefined): number | undefined {
  if (d === undefined || d === null) return undefined;
  return Number(d.seconds ?? 0) * 1000 + Math.round((d.nanos ?? 0) / 1e6);
}
