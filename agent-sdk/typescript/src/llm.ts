/**
 * A small client for the chat APIs of Anthropic and OpenAI, over the SDK's
 * `http` (so the allowlist and recorded fixtures apply), as the Rust SDK's
 * `llm` module. The key comes from a granted secret, never from the config:
 *
 * ```ts
 * const config = ctx.configAs(z.object({ llm: LlmConfig }));
 * const completion = new Llm(config.llm, ctx).complete(system, user);
 * ```
 */

import { z } from "zod";

import type { Context } from "./context.js";
import { AgentError } from "./errors.js";
import * as http from "./http.js";

/** Which API: `anthropic` (Messages) or `openai` (Chat Completions). */
export const Provider = z.enum(["anthropic", "openai"]);
export type Provider = z.infer<typeof Provider>;

const PROVIDERS = {
  anthropic: { name: "Anthropic", baseUrl: "https://api.anthropic.com", secret: "anthropic-api-key" },
  openai: { name: "OpenAI", baseUrl: "https://api.openai.com", secret: "openai-api-key" },
} as const;

/** The model an agent calls: part of its config. */
export const LlmConfig = z
  .object({
    provider: Provider,
    model: z.string().describe("The model, such as `claude-sonnet-4-5` or `gpt-4o-mini`."),
    baseUrl: z.string().optional().describe("The API's base URL [default: the provider's]."),
    apiKeySecret: z
      .string()
      .optional()
      .describe("The granted secret holding the key [default `anthropic-api-key` or `openai-api-key`]."),
    maxTokens: z.number().int().min(1).optional().describe("Most tokens in the answer [default 1024]."),
  })
  .strict();
export type LlmConfig = z.infer<typeof LlmConfig>;

/** The model's reply. */
export interface Completion {
  text: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
}

export class Llm {
  private readonly provider: Provider;
  private readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly model: string;
  private readonly maxTokens: number;

  /** Reads the key from its secret (throws `SecretError` unless granted and set). */
  constructor(config: LlmConfig, ctx: Context) {
    this.provider = config.provider;
    this.apiKey = ctx.secret(config.apiKeySecret ?? PROVIDERS[config.provider].secret);
    this.baseUrl = (config.baseUrl ?? PROVIDERS[config.provider].baseUrl).replace(/\/+$/, "");
    this.model = config.model;
    this.maxTokens = config.maxTokens ?? 1024;
  }

  /** One exchange: the system prompt and the user's message. */
  complete(system: string, user: string): Completion {
    const response =
      this.provider === "anthropic"
        ? http.post(`${this.baseUrl}/v1/messages`, {
            headers: { "x-api-key": this.apiKey, "anthropic-version": "2023-06-01" },
            json: { model: this.model, max_tokens: this.maxTokens, system, messages: [{ role: "user", content: user }] },
          })
        : http.post(`${this.baseUrl}/v1/chat/completions`, {
            headers: { authorization: `Bearer ${this.apiKey}` },
            json: {
              model: this.model,
              max_tokens: this.maxTokens,
              messages: [
                { role: "system", content: system },
                { role: "user", content: user },
              ],
            },
          });
    const name = PROVIDERS[this.provider].name;
    if (response.status === 401 || response.status === 403) {
      throw AgentError.fatal(`the ${name} API refused the key (${apiMessage(response.text())}): check the secret holding it`);
    }
    const completion = parse(this.provider, response.raiseForStatus().json());
    if (completion === undefined) {
      throw AgentError.fatal(`the ${name} API answered in an unexpected shape`);
    }
    return completion;
  }
}

/** The API's own error message, or the start of the body. */
function apiMessage(body: string): string {
  try {
    const message = (JSON.parse(body) as { error?: { message?: unknown } }).error?.message;
    if (typeof message === "string") {
      return message;
    }
  } catch {
    // Not JSON.
  }
  return Array.from(body).slice(0, 200).join("");
}

type Json = Record<string, unknown>;

function parse(provider: Provider, body: unknown): Completion | undefined {
  const b = (body ?? {}) as Json;
  const usage = (b.usage ?? {}) as Json;
  const count = (v: unknown) => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : 0);
  if (typeof b.model !== "string") {
    return undefined;
  }
  if (provider === "anthropic") {
    if (!Array.isArray(b.content)) {
      return undefined;
    }
    const text = (b.content as Json[])
      .filter((block) => block.type === "text" && typeof block.text === "string")
      .map((block) => block.text as string)
      .join("");
    return { text, model: b.model, inputTokens: count(usage.input_tokens), outputTokens: count(usage.output_tokens) };
  }
  const content = (((b.choices as Json[] | undefined)?.[0]?.message ?? {}) as Json).content;
  if (typeof content !== "string") {
    return undefined;
  }
  return { text: content, model: b.model, inputTokens: count(usage.prompt_tokens), outputTokens: count(usage.completion_tokens) };
}
