// Context7's HTTP API: library search and documentation, with every status
// Context7 documents mapped to the agent error the host's resilience chain
// acts on. Mirrors agents/context7/src/api.rs.
import { AgentError, http, log } from "@orchestr8/agent";

export const DEFAULT_BASE_URL = "https://context7.com/api";
/** Largest answer read from Context7. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;
/** Longest query parameter sent. */
export const MAX_PARAM_CHARS = 500;
/** Longest message of Context7's quoted in an error. */
const MAX_MESSAGE_CHARS = 300;

/** A library as Context7's search describes it. */
export interface Library {
  id: string;
  title?: string;
  description?: string;
  state?: string;
  totalSnippets?: number;
  trustScore?: number;
  versions?: string[];
}

/** Only finalized libraries (or those without a state) have documentation. */
export function usable(library: Library): boolean {
  return library.state === undefined || library.state === null || library.state === "finalized";
}

export interface Code {
  language?: string;
  code?: string;
}

export interface CodeSnippet {
  codeTitle?: string;
  codeDescription?: string;
  codeLanguage?: string;
  codeTokens?: number;
  codeId?: string;
  pageTitle?: string;
  codeList?: Code[];
}

export interface InfoSnippet {
  pageId?: string;
  breadcrumb?: string;
  content?: string;
  contentTokens?: number;
}

export interface Docs {
  codeSnippets: CodeSnippet[];
  infoSnippets: InfoSnippet[];
}

/** Why a call gave no answer: not found, moved, or an agent error. */
export type Failure = { kind: "not-found"; message: string } | { kind: "redirected"; id: string };

/** Thrown for the two failures the agent handles itself. */
export class Context7Failure extends Error {
  constructor(readonly failure: Failure) {
    super(failure.kind);
  }
}

export class Client {
  private readonly baseUrl: string;

  constructor(
    baseUrl: string,
    private readonly apiKey: string | undefined,
    private readonly keySecret: string,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  /** Libraries matching `name`, best first by Context7's own order. */
  search(name: string, query: string): Library[] {
    const response = this.send(`${this.baseUrl}/v2/libs/search`, {
      libraryName: clip(name, MAX_PARAM_CHARS),
      query: clip(query, MAX_PARAM_CHARS),
    });
    let found: { results?: Library[] };
    try {
      found = JSON.parse(response.text()) as { results?: Library[] };
    } catch (e) {
      throw AgentError.retryable(`Context7's search answer is not readable: ${(e as Error).message}`);
    }
    return (found.results ?? []).filter((l) => typeof l.id === "string" && l.id !== "");
  }

  /** The documentation of `libraryId` relevant to `query`. */
  context(libraryId: string, query: string): Docs {
    const response = this.send(`${this.baseUrl}/v2/context`, {
      libraryId,
      query: clip(query, MAX_PARAM_CHARS),
      type: "json",
    });
    const text = response.text();
    if (text.trim() === "") {
      return { codeSnippets: [], infoSnippets: [] };
    }
    let docs: Partial<Docs>;
    try {
      docs = JSON.parse(text) as Partial<Docs>;
    } catch (e) {
      throw AgentError.retryable(`Context7's documentation answer is not readable: ${(e as Error).message}`);
    }
    return { codeSnippets: docs.codeSnippets ?? [], infoSnippets: docs.infoSnippets ?? [] };
  }

  private send(url: string, params: Record<string, string>): http.Response {
    const headers: Record<string, string> = { accept: "application/json", "x-context7-source": "orchestr8" };
    if (this.apiKey !== undefined) {
      headers.authorization = `Bearer ${this.apiKey}`;
    }
    const response = http.get(url, { params, headers, maxResponseBytes: MAX_BODY_BYTES });
    return this.check(response);
  }

  private check(response: http.Response): http.Response {
    const status = response.status;
    if (status >= 200 && status < 300 && status !== 202) {
      return response;
    }
    let body: { error?: unknown; message?: unknown; redirectUrl?: unknown } = {};
    try {
      const parsed: unknown = JSON.parse(response.text());
      if (typeof parsed === "object" && parsed !== null) {
        body = parsed as typeof body;
      }
    } catch {
      // Not JSON: the status says it all.
    }
    const code = typeof body.error === "string" ? body.error : "";
    const message = this.scrub(typeof body.message === "string" ? body.message : "");
    const said =
      code === "" && message === "" ? `Context7 answered ${status}` : `Context7 answered ${status} (${code}): ${message}`;
    const after = (response.headers["retry-after"] ?? "").trim();
    const retryAfterMs = /^\d+$/.test(after) ? Number(after) * 1000 : undefined;
    const retryable = (text: string) => AgentError.retryable(text, { retryAfterMs });
    if (status === 202) {
      throw retryable(`${said}: Context7 is still indexing this library; try again later`);
    }
    if (status === 301) {
      const id = body.redirectUrl;
      if (typeof id === "string" && isLibraryId(id)) {
        throw new Context7Failure({ kind: "redirected", id });
      }
      throw AgentError.fatal(`${said}: the library moved, but the answer names no valid new id`);
    }
    if (status === 400 || status === 422) {
      throw AgentError.invalidInput(said);
    }
    if (status === 401) {
      throw AgentError.fatal(
        this.apiKey !== undefined
          ? `Context7 rejected the API key (${code}): check the value of the \`${this.keySecret}\` secret`
          : `Context7 wants an API key (${code}): grant the \`${this.keySecret}\` secret and set it`,
      );
    }
    if (status === 402 || status === 403) {
      throw AgentError.fatal(`${said}: the account behind the API key cannot use this (spending limit or access)`);
    }
    if (status === 404) {
      throw new Context7Failure({ kind: "not-found", message: message === "" ? said : message });
    }
    if (status === 408 || status === 429 || (status >= 500 && status <= 599)) {
      log.warn(said);
      throw retryable(said);
    }
    throw AgentError.fatal(said);
  }

  /** Context7's message, clipped, with the key removed should it echo it. */
  private scrub(text: string): string {
    let clipped = clip(text, MAX_MESSAGE_CHARS);
    if (this.apiKey) {
      clipped = clipped.split(this.apiKey).join("[REDACTED]");
    }
    return clipped;
  }
}

/** `/owner/repo`, `/owner/repo@version` or `/owner/repo/version`. */
export function isLibraryId(text: string): boolean {
  if (!text.startsWith("/")) {
    return false;
  }
  const part = (s: string) => s !== "" && !/[\s/]/u.test(s);
  const parts = text.slice(1).split("/");
  if (parts.length === 2) {
    const [owner, repo] = parts as [string, string];
    const at = repo.indexOf("@");
    return part(owner) && (at >= 0 ? part(repo.slice(0, at)) && part(repo.slice(at + 1)) : part(repo));
  }
  if (parts.length === 3) {
    const [owner, repo, version] = parts as [string, string, string];
    return part(owner) && part(repo) && !repo.includes("@") && part(version);
  }
  return false;
}

/** The version an id names, if any. */
export function idVersion(id: string): string | undefined {
  if (!id.startsWith("/")) {
    return undefined;
  }
  const parts = id.slice(1).split("/");
  if (parts.length === 2) {
    const repo = parts[1] as string;
    const at = repo.indexOf("@");
    return at >= 0 ? repo.slice(at + 1) : undefined;
  }
  return parts.length === 3 ? parts[2] : undefined;
}

/** The first `max` characters (Unicode scalar values, as the Rust twin counts). */
export function clip(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : chars.slice(0, max).join("");
}
