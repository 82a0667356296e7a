// The XML prompt templates of the Rust research agent (agents/context7/
// prompts, shared, not copied), filled with escaped values. Mirrors
// agents/context7/src/prompt.rs.
import { AgentError } from "@orchestr8/agent";

import RESEARCH_CITED from "../../context7/prompts/research-cited.xml";
import RESEARCH from "../../context7/prompts/research.xml";
import SYSTEM from "../../context7/prompts/system.xml";
import type { Snippet } from "./snippets.js";

/** Which task template asks for the answer: the config's `prompt`. */
export const TEMPLATES = { research: RESEARCH, cited: RESEARCH_CITED } as const;
export type Template = keyof typeof TEMPLATES;

export interface Research {
  question: string;
  topic?: string;
  libraryId: string;
  libraryTitle: string;
  libraryVersion?: string;
  snippets: Snippet[];
}

/** The system prompt and the user's message. */
export function render(template: Template, research: Research): [string, string] {
  const snippets = research.snippets
    .map(
      (s, i) =>
        `<snippet n="${i + 1}" kind="${escape(s.kind)}" title="${escape(s.title)}" source="${escape(s.source ?? "")}">\n${escape(s.content)}\n</snippet>`,
    )
    .join("\n");
  const values: Record<string, string> = {
    question: escape(research.question),
    topic: escape(research.topic ?? ""),
    library_id: escape(research.libraryId),
    library_title: escape(research.libraryTitle),
    library_version: escape(research.libraryVersion ?? "latest"),
    snippets,
  };
  return [SYSTEM.trim(), fill(TEMPLATES[template], values)];
}

/** `{{name}}` → its value; a placeholder without one is a bug. */
function fill(template: string, values: Record<string, string>): string {
  let out = "";
  let rest = template;
  for (let start = rest.indexOf("{{"); start >= 0; start = rest.indexOf("{{")) {
    out += rest.slice(0, start);
    const after = rest.slice(start + 2);
    const end = after.indexOf("}}");
    if (end < 0) {
      throw AgentError.fatal("prompt template: `{{` is never closed");
    }
    const name = after.slice(0, end);
    const value = values[name];
    if (value === undefined) {
      throw AgentError.fatal(`prompt template: no value for \`${name}\``);
    }
    out += value;
    rest = after.slice(end + 2);
  }
  return out + rest;
}

/** XML-escaped, control characters other than tab and newlines dropped. */
export function escape(text: string): string {
  let out = "";
  for (const c of text) {
    switch (c) {
      case "&":
        out += "&amp;";
        break;
      case "<":
        out += "&lt;";
        break;
      case ">":
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case "'":
        out += "&apos;";
        break;
      default:
        // Rust's `char::is_control`: the C0 and C1 control characters.
        if (/[\u0000-\u001f\u007f-\u009f]/.test(c) && c !== "\t" && c !== "\n" && c !== "\r") {
          break;
        }
        out += c;
    }
  }
  return out;
}
