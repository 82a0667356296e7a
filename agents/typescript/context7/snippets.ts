// Context7's snippets, flattened and cut to the token budget, in the order
// Context7 ranked them. Mirrors agents/context7/src/snippets.rs.
import { type Docs, clip } from "./api.js";

/** Roughly, for English text and code. */
const CHARS_PER_TOKEN = 4;
/** Snippets considered at most, whatever the budget. */
const MAX_CONSIDERED = 1000;
/** Longest title or source kept. */
const MAX_LABEL_CHARS = 300;

export interface Snippet {
  kind: "code" | "info";
  title: string;
  source?: string;
  language?: string;
  content: string;
  tokens: number;
}

export interface Budget {
  limit: number;
  used: number;
  returned: number;
  omitted: number;
}

/** Characters as the Rust twin counts them (Unicode scalar values). */
function chars(text: string): number {
  return Array.from(text).length;
}

function estimate(text: string): number {
  return Math.ceil(chars(text) / CHARS_PER_TOKEN);
}

function tokens(claimed: number | undefined, text: string): number {
  const given = claimed !== undefined && Number.isFinite(claimed) && claimed > 0 ? Math.trunc(claimed) : 0;
  return Math.max(given, estimate(text));
}

function label(text: string | undefined): string | undefined {
  const trimmed = text?.trim();
  return trimmed ? clip(trimmed, MAX_LABEL_CHARS) : undefined;
}

function source(text: string | undefined): string | undefined {
  const l = label(text);
  return l !== undefined && (l.startsWith("https://") || l.startsWith("http://")) ? l : undefined;
}

function all(docs: Docs): Snippet[] {
  const code = docs.codeSnippets.map((c): Snippet => {
    let content = (c.codeDescription ?? "").trim();
    for (const block of c.codeList ?? []) {
      const language = block.language ?? c.codeLanguage ?? "";
      content += `\n\n\`\`\`${language}\n${(block.code ?? "").trimEnd()}\n\`\`\``;
    }
    content = content.trim();
    return {
      kind: "code",
      title: label(c.codeTitle ?? c.pageTitle) ?? "",
      source: source(c.codeId),
      language: label(c.codeLanguage),
      content,
      tokens: tokens(c.codeTokens, content),
    };
  });
  const info = docs.infoSnippets.map((i): Snippet => {
    const content = (i.content ?? "").trim();
    return {
      kind: "info",
      title: label(i.breadcrumb) ?? "",
      source: source(i.pageId),
      content,
      tokens: tokens(i.contentTokens, content),
    };
  });
  return [...code, ...info].filter((s) => s.content !== "").slice(0, MAX_CONSIDERED);
}

/**
 * Snippets in order while they fit `limit` tokens (a larger one is skipped
 * for smaller ones after it); the first is cut to fit when even it is too
 * large, so the brief is never empty when Context7 answered.
 */
export function withinBudget(docs: Docs, limit: number): [Snippet[], Budget] {
  const returned = docs.codeSnippets.length + docs.infoSnippets.length;
  const kept: Snippet[] = [];
  let used = 0;
  for (const snippet of all(docs)) {
    if (used + snippet.tokens > limit) {
      if (kept.length > 0) {
        continue;
      }
      const marker = "\n[… cut to the token budget]";
      // Room in characters, less the marker's length in bytes, as the Rust twin reckons it.
      const room = Math.max(0, limit * CHARS_PER_TOKEN - new TextEncoder().encode(marker).length);
      snippet.content = `${clip(snippet.content, room)}${marker}`;
      snippet.tokens = Math.min(estimate(snippet.content), limit);
    }
    used += snippet.tokens;
    kept.push(snippet);
  }
  return [kept, { limit, used, returned, omitted: returned - kept.length }];
}

/** The distinct sources of `snippets`, in order. */
export function sources(snippets: Snippet[]): string[] {
  const seen: string[] = [];
  for (const s of snippets) {
    if (s.source !== undefined && !seen.includes(s.source)) {
      seen.push(s.source);
    }
  }
  return seen;
}
