/**
 * Structured logs and progress events, sent to the host. The host attaches
 * the execution, step and attempt, caps the volume per invocation and
 * redacts granted secret values:
 *
 * ```ts
 * log.info("fetched", { url, status: 200 });
 * log.emit("progress", { percent: 40 });
 * ```
 */

import * as host from "orchestr8:agent/host@0.1.0";

/** Key/value fields of a log line; values that are not strings are sent as JSON. */
export type Fields = Record<string, unknown>;

function write(level: host.LogLevel, message: string, fields: Fields): void {
  const pairs: Array<[string, string]> = Object.entries(fields).map(([k, v]) => [
    k,
    typeof v === "string" ? v : (JSON.stringify(v) ?? String(v)),
  ]);
  host.log(level, message, pairs);
}

export function trace(message: string, fields: Fields = {}): void {
  write("trace", message, fields);
}

export function debug(message: string, fields: Fields = {}): void {
  write("debug", message, fields);
}

export function info(message: string, fields: Fields = {}): void {
  write("info", message, fields);
}

export function warn(message: string, fields: Fields = {}): void {
  write("warn", message, fields);
}

export function error(message: string, fields: Fields = {}): void {
  write("error", message, fields);
}

/**
 * A progress event (`kind` such as `"progress"`) that observers of the
 * execution receive; `payload` is anything JSON can hold.
 */
export function emit(kind: string, payload: unknown): void {
  host.emitEvent(kind, JSON.stringify(payload) ?? "null");
}
