// The parts of the `orchestr8:agent` world (and of `wasi:http`) the SDK
// imports, typed as ComponentizeJS binds them: functions are camelCase,
// enum cases are their WIT names, variants are `{ tag, val }`, and a
// function returning `result` throws a `ComponentError` whose `payload` is
// the error case.

declare module "orchestr8:agent/host@0.1.0" {
  export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";
  export function log(level: LogLevel, message: string, fields: Array<[string, string]>): void;
  export function emitEvent(kind: string, payload: string): void;
  /** Throws a `ComponentError` with `payload` `"not-granted"` or `"not-set"`. */
  export function getSecret(name: string): string;
  export function isCancelled(): boolean;
}

declare module "wasi:io/poll@0.2.12" {
  export class Pollable {
    block(): void;
  }
}

declare module "wasi:io/streams@0.2.12" {
  export type StreamError = { tag: "closed" } | { tag: "last-operation-failed"; val: unknown };
  export class InputStream {
    /** Throws a `ComponentError` whose `payload` is a `StreamError`. */
    blockingRead(len: bigint): Uint8Array;
  }
  export class OutputStream {
    blockingWriteAndFlush(contents: Uint8Array): void;
  }
}

declare module "wasi:http/types@0.2.12" {
  import type { Pollable } from "wasi:io/poll@0.2.12";
  import type { InputStream, OutputStream } from "wasi:io/streams@0.2.12";

  export type Method =
    | { tag: "get" }
    | { tag: "head" }
    | { tag: "post" }
    | { tag: "put" }
    | { tag: "delete" }
    | { tag: "connect" }
    | { tag: "options" }
    | { tag: "trace" }
    | { tag: "patch" }
    | { tag: "other"; val: string };
  export type Scheme = { tag: "HTTP" } | { tag: "HTTPS" } | { tag: "other"; val: string };
  /** Only the case the SDK tells apart is spelled out. */
  export type ErrorCode = { tag: "HTTP-request-denied" } | { tag: string; val?: unknown };

  export class Fields {
    static fromList(entries: Array<[string, Uint8Array]>): Fields;
    entries(): Array<[string, Uint8Array]>;
  }
  export class RequestOptions {
    constructor();
    setConnectTimeout(nanos: bigint | undefined): void;
    setFirstByteTimeout(nanos: bigint | undefined): void;
  }
  export class OutgoingRequest {
    constructor(headers: Fields);
    body(): OutgoingBody;
    setMethod(method: Method): void;
    setScheme(scheme: Scheme | undefined): void;
    setAuthority(authority: string | undefined): void;
    setPathWithQuery(path: string | undefined): void;
  }
  export class OutgoingBody {
    write(): OutputStream;
    static finish(body: OutgoingBody, trailers: Fields | undefined): void;
  }
  export class IncomingResponse {
    status(): number;
    headers(): Fields;
    consume(): IncomingBody;
  }
  export class IncomingBody {
    stream(): InputStream;
  }
  export type Result<T, E> = { tag: "ok"; val: T } | { tag: "err"; val: E };
  export class FutureIncomingResponse {
    subscribe(): Pollable;
    get(): Result<Result<IncomingResponse, ErrorCode>, void> | undefined;
  }
}

declare module "wasi:http/outgoing-handler@0.2.12" {
  import type { ErrorCode, FutureIncomingResponse, OutgoingRequest, RequestOptions } from "wasi:http/types@0.2.12";
  /** Throws a `ComponentError` whose `payload` is an `ErrorCode`. */
  export function handle(request: OutgoingRequest, options: RequestOptions | undefined): FutureIncomingResponse;
  export type { ErrorCode };
}
