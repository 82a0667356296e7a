/**
 * Outbound HTTP over `wasi:http`, synchronous, as the Rust and Python SDKs'
 * clients. Every request is checked by the host against the agent's
 * allowlist before any connection is made; a host off the list fails with
 * an `HttpError` whose `reason` is `"denied"` (and the call, left uncaught,
 * with `CAPABILITY_DENIED`):
 *
 * ```ts
 * const repo = http.get("https://api.github.com/repos/rust-lang/rust", {
 *   headers: { "user-agent": "my-agent" },
 * }).raiseForStatus().json();
 * ```
 *
 * The global `fetch` works too (in an `async process`), under the same
 * allowlist, but a refused request is only a `TypeError: NetworkError`
 * there: this client tells a denial from a transport failure.
 */

import { handle } from "wasi:http/outgoing-handler@0.2.12";
import * as types from "wasi:http/types@0.2.12";

import { AgentError } from "./errors.js";

/** Largest response body read unless asked otherwise. */
export const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** Largest chunk a WASI output stream accepts in one blocking write. */
const WRITE_CHUNK = 4096;

/**
 * Why a request produced no response: `"denied"` (not on the allowlist),
 * `"invalid-url"`, `"transport"` (connecting, sending or receiving failed:
 * retryable), `"body-too-large"` or `"decode"` (the body is not JSON).
 */
export type HttpErrorReason = "denied" | "invalid-url" | "transport" | "body-too-large" | "decode";

/** A request that produced no usable response. */
export class HttpError extends AgentError {
  readonly reason: HttpErrorReason;

  constructor(reason: HttpErrorReason, message: string) {
    super(reason === "transport" ? "retryable" : "fatal", message);
    this.name = "HttpError";
    this.reason = reason;
  }
}

/** A complete response: `status`, `headers` (names lower-case) and `body`. */
export class Response {
  constructor(
    readonly status: number,
    readonly headers: Record<string, string>,
    readonly body: Uint8Array,
  ) {}

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  text(): string {
    return new TextDecoder().decode(this.body);
  }

  json<T = unknown>(): T {
    try {
      return JSON.parse(this.text()) as T;
    } catch (e) {
      throw new HttpError("decode", `response is not the expected JSON: ${(e as Error).message}`);
    }
  }

  /**
   * This response if it succeeded; else an `AgentError`: retryable for 408,
   * 429 and 5xx (with `Retry-After` when given), fatal for the rest.
   */
  raiseForStatus(): Response {
    if (this.ok) {
      return this;
    }
    const message = `the server answered ${this.status}: ${Array.from(this.text()).slice(0, 200).join("")}`;
    if (this.status === 408 || this.status === 429 || this.status >= 500) {
      const after = this.headers["retry-after"] ?? "";
      const retryAfterMs = /^\d+$/.test(after) ? Number(after) * 1000 : undefined;
      throw AgentError.retryable(message, { retryAfterMs });
    }
    throw AgentError.fatal(message);
  }
}

export interface RequestOptions {
  headers?: Record<string, string>;
  /** Appended as a query string. */
  params?: Record<string, string>;
  /** Sent as the body, with `content-type: application/json`. */
  json?: unknown;
  body?: string | Uint8Array;
  /** Bounds connecting and the first byte of the answer, in ms (the invocation's deadline bounds everything). */
  timeoutMs?: number;
  maxResponseBytes?: number;
}

export function get(url: string, options: RequestOptions = {}): Response {
  return request("GET", url, options);
}

export function post(url: string, options: RequestOptions = {}): Response {
  return request("POST", url, options);
}

/** Sends one request and reads the whole response. */
export function request(method: string, url: string, options: RequestOptions = {}): Response {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new HttpError("invalid-url", `invalid URL: ${JSON.stringify(url)} (need http:// or https:// and a host)`);
  }
  if ((parsed.protocol !== "http:" && parsed.protocol !== "https:") || !parsed.host) {
    throw new HttpError("invalid-url", `invalid URL: ${JSON.stringify(url)} (need http:// or https:// and a host)`);
  }
  const params = Object.entries(options.params ?? {})
    .map(([k, v]) => `${encodeQuery(k)}=${encodeQuery(v)}`)
    .join("&");
  if (params !== "") {
    parsed.search = parsed.search === "" ? `?${params}` : `${parsed.search}&${params}`;
  }
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.headers ?? {})) {
    fields[k.toLowerCase()] = v;
  }
  let payload: Uint8Array = new Uint8Array(0);
  if (options.json !== undefined) {
    payload = new TextEncoder().encode(JSON.stringify(options.json));
    fields["content-type"] ??= "application/json";
  } else if (typeof options.body === "string") {
    payload = new TextEncoder().encode(options.body);
  } else if (options.body !== undefined) {
    payload = options.body;
  }

  const failed = (code: unknown): HttpError => {
    const { tag = "unknown", val } = (code ?? {}) as { tag?: string; val?: unknown };
    if (tag === "HTTP-request-denied") {
      return new HttpError("denied", `request to ${url} was denied: the host is not on the agent's allowlist`);
    }
    const why = typeof val === "string" ? `${tag}: ${val}` : tag;
    return new HttpError("transport", `HTTP request to ${url} failed: ${why}`);
  };

  let outgoing: types.OutgoingRequest;
  try {
    const encoder = new TextEncoder();
    outgoing = new types.OutgoingRequest(
      types.Fields.fromList(Object.entries(fields).map(([k, v]) => [k, encoder.encode(v)])),
    );
    outgoing.setMethod(wasiMethod(method));
    outgoing.setScheme(parsed.protocol === "https:" ? { tag: "HTTPS" } : { tag: "HTTP" });
    outgoing.setAuthority(parsed.host);
    outgoing.setPathWithQuery(`${parsed.pathname || "/"}${parsed.search}`);
  } catch (e) {
    throw new HttpError("invalid-url", `cannot make a request to ${url}: ${describe(e)}`);
  }
  let requestOptions: types.RequestOptions | undefined;
  if (options.timeoutMs !== undefined) {
    requestOptions = new types.RequestOptions();
    const nanos = BigInt(Math.max(0, Math.round(options.timeoutMs))) * 1_000_000n;
    requestOptions.setConnectTimeout(nanos);
    requestOptions.setFirstByteTimeout(nanos);
  }
  const outgoingBody = outgoing.body();
  let pending: types.FutureIncomingResponse;
  try {
    pending = handle(outgoing, requestOptions);
  } catch (e) {
    throw failed((e as { payload?: unknown }).payload);
  }
  try {
    const stream = outgoingBody.write();
    for (let start = 0; start < payload.length; start += WRITE_CHUNK) {
      stream.blockingWriteAndFlush(payload.subarray(start, start + WRITE_CHUNK));
    }
    dispose(stream); // a body cannot be finished while its stream lives
    types.OutgoingBody.finish(outgoingBody, undefined);
  } catch (e) {
    throw failed((e as { payload?: unknown }).payload);
  }

  const ready = pending.subscribe();
  ready.block();
  dispose(ready);
  const got = pending.get();
  if (got === undefined || got.tag === "err") {
    throw new HttpError("transport", `HTTP request to ${url} failed: no response`);
  }
  if (got.val.tag === "err") {
    throw failed(got.val.val);
  }
  const response = got.val.val;
  const headers: Record<string, string> = {};
  const latin1 = new TextDecoder("latin1");
  for (const [k, v] of response.headers().entries()) {
    headers[k.toLowerCase()] = latin1.decode(v);
  }
  const max = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const chunks: Uint8Array[] = [];
  let size = 0;
  const stream = response.consume().stream();
  for (;;) {
    let chunk: Uint8Array;
    try {
      chunk = stream.blockingRead(64n * 1024n);
    } catch (e) {
      if ((e as { payload?: { tag?: string } }).payload?.tag === "closed") {
        break;
      }
      throw new HttpError("transport", `reading the response of ${url} failed`);
    }
    size += chunk.length;
    if (size > max) {
      throw new HttpError("body-too-large", `response body exceeds ${max} bytes`);
    }
    chunks.push(chunk);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return new Response(response.status(), headers, body);
}

/** Everything but RFC 3986's unreserved characters percent-encoded, as the
 * Rust and Python SDKs do, so recorded fixtures match whichever SDK sent it. */
function encodeQuery(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function wasiMethod(method: string): types.Method {
  const upper = method.toUpperCase();
  switch (upper) {
    case "GET":
    case "HEAD":
    case "POST":
    case "PUT":
    case "DELETE":
    case "OPTIONS":
    case "PATCH":
      return { tag: upper.toLowerCase() } as types.Method;
    default:
      return { tag: "other", val: upper };
  }
}

/** Drops a WIT resource now rather than when the engine collects it. */
function dispose(resource: object): void {
  (resource as { [Symbol.dispose]?: () => void })[Symbol.dispose]?.();
}

function describe(e: unknown): string {
  const payload = (e as { payload?: unknown }).payload;
  return payload === undefined ? String(e) : JSON.stringify(payload);
}
