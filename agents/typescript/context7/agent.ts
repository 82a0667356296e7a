// @orchestr8/ts-context7: the TypeScript twin of the Context7 research agent
// (agents/context7, in Rust). Researches a library's current documentation on
// Context7 and returns a focused brief; on the same answers from Context7 it
// returns the same brief as the Rust agent. It may reach only the hosts its
// grants allow; the Context7 key is the optional `context7-api-key` secret
// (without it, the anonymous tier).
import { z } from "zod";

import { AgentError, type Context, Llm, LlmConfig, Provider, SecretError, defineAgent, log } from "@orchestr8/agent";

import { Client, Context7Failure, DEFAULT_BASE_URL, type Docs, type Library, idVersion, isLibraryId } from "./api.js";
import { type Template, render } from "./prompt.js";
import { type Alternative, asAlternative, because, rank, trustLabel } from "./rank.js";
import { type Snippet, sources, withinBudget } from "./snippets.js";

const DEFAULT_TOKENS = 5_000;
const MIN_TOKENS = 100;
const MAX_TOKENS = 100_000;
const MAX_QUERY_CHARS = 2_000;
const MAX_ALTERNATIVES = 4;
const KEY_SECRET = "context7-api-key";

const Input = z
  .object({
    query: z.string().describe('The question or task, such as "how do I add middleware to a router".'),
    library: z
      .string()
      .nullish()
      .describe(
        'The library: a name ("axum") or a Context7 id ("/tokio-rs/axum", optionally with a version: "/vercel/next.js/v14.3.0"). Without it, the library is searched for with the question itself.',
      ),
    topic: z.string().nullish().describe('Narrows the documentation to a topic, such as "routing".'),
    tokens: z.number().int().min(0).nullish().describe("Most tokens of documentation in the brief, 100 to 100000 [default 5000]."),
  })
  .strict();

const Config = z
  .object({
    baseUrl: z.string().optional(),
    apiKeySecret: z.string().optional(),
    llm: LlmConfig.optional(),
    prompt: z.enum(["research", "cited"]).optional(),
  })
  .strict();

const AlternativeSchema = z.object({ id: z.string(), title: z.string(), score: z.number(), why: z.string() });

const Brief = z.object({
  query: z.string().describe("The question, as asked."),
  topic: z.string().optional().describe("The topic, when one was given."),
  library: z
    .object({
      id: z.string(),
      title: z.string(),
      version: z.string().optional(),
      versions: z.array(z.string()).optional(),
      description: z.string().optional(),
      trustScore: z.number().optional(),
      trust: z.string(),
      totalSnippets: z.number().int().min(0).optional(),
    })
    .describe("The library researched."),
  reason: z.string().describe("Why that library."),
  alternatives: z.array(AlternativeSchema).describe("Libraries considered and not chosen."),
  snippets: z
    .array(
      z.object({
        kind: z.string(),
        title: z.string(),
        source: z.string().optional(),
        language: z.string().optional(),
        content: z.string(),
        tokens: z.number().int().min(0),
      }),
    )
    .describe("The relevant documentation, within the token budget."),
  budget: z
    .object({
      limit: z.number().int().min(0),
      used: z.number().int().min(0),
      returned: z.number().int().min(0),
      omitted: z.number().int().min(0),
    })
    .describe("How the token budget was spent."),
  sources: z.array(z.string()).describe("Where the snippets come from."),
  answer: z
    .object({
      text: z.string().describe("The model's answer, citing snippets as [n]."),
      provider: Provider,
      completion: z.object({
        text: z.string(),
        model: z.string(),
        inputTokens: z.number().int().min(0),
        outputTokens: z.number().int().min(0),
      }),
    })
    .optional()
    .describe("A language model's answer, when one is configured."),
});

type Chosen = z.infer<typeof Brief>["library"];

export const handler = defineAgent({
  id: "@orchestr8/ts-context7",
  version: "0.1.0",
  description:
    "Researches a library's current documentation on Context7 and returns a focused brief: the library chosen and why, the relevant snippets within a token budget, and their sources (plus a cited answer when a language model is configured). The TypeScript twin of @orchestr8/context7.",
  input: Input,
  output: Brief,
  process(input, ctx) {
    const query = input.query.trim();
    if (query === "") {
      throw AgentError.invalidInput("`query` must not be empty");
    }
    if (Array.from(query).length > MAX_QUERY_CHARS) {
      throw AgentError.invalidInput(`\`query\` is longer than ${MAX_QUERY_CHARS} characters`);
    }
    const tokens = input.tokens ?? DEFAULT_TOKENS;
    if (tokens < MIN_TOKENS || tokens > MAX_TOKENS) {
      throw AgentError.invalidInput(`\`tokens\` must be between ${MIN_TOKENS} and ${MAX_TOKENS}, not ${tokens}`);
    }
    const topic = input.topic?.trim() || undefined;
    const library = input.library?.trim() || undefined;
    const config = ctx.configAs(Config);
    const client = connect(config, ctx);
    const [picked, reason, alternatives] = choose(client, library, query);
    const docsQuery = topic !== undefined ? `${topic}: ${query}` : query;
    const [chosen, docs] = fetch(client, picked, docsQuery);
    const [snippets, budget] = withinBudget(docs, tokens);
    if (snippets.length === 0) {
      throw AgentError.invalidInput(
        `Context7 has no documentation on this for ${chosen.id}: try another wording, a topic, or another library`,
        { details: { library: chosen.id, alternatives } },
      );
    }
    log.info(`${snippets.length} snippets of ${chosen.id} (${budget.used} of ${budget.limit} tokens)`);
    const answer =
      config.llm === undefined
        ? undefined
        : synthesize(config.llm, config.prompt ?? "research", ctx, query, topic, chosen, snippets);
    return { query, topic, library: chosen, reason, alternatives, snippets, budget, sources: sources(snippets), answer };
  },
});

function connect(config: z.infer<typeof Config>, ctx: Context): Client {
  const secret = config.apiKeySecret ?? KEY_SECRET;
  let key: string | undefined;
  try {
    key = ctx.secret(secret);
  } catch (e) {
    // The key is optional unless the config names a secret.
    if (!(e instanceof SecretError) || config.apiKeySecret !== undefined) {
      throw AgentError.fatal(`the \`${secret}\` secret: ${(e as Error).message}`);
    }
    log.debug("no Context7 API key: using the anonymous tier");
  }
  return new Client(config.baseUrl ?? DEFAULT_BASE_URL, key, secret);
}

/** The library: the id as given, or the best search result. */
function choose(client: Client, library: string | undefined, query: string): [Library, string, Alternative[]] {
  if (library !== undefined && isLibraryId(library)) {
    return [{ id: library }, "the Context7 library id was given", []];
  }
  const name = library ?? query;
  let found: Library[];
  try {
    found = client.search(name, query);
  } catch (e) {
    if (e instanceof Context7Failure) {
      if (e.failure.kind === "not-found") {
        throw notFound(name, e.failure.message, []);
      }
      throw AgentError.retryable("Context7's search answered with a redirect");
    }
    throw e;
  }
  const [ranked, skipped] = rank(name, found);
  const best = ranked.shift();
  if (best === undefined) {
    throw notFound(name, "no usable library matched", skipped);
  }
  const alternatives = [...ranked.map(asAlternative), ...skipped].slice(0, MAX_ALTERNATIVES);
  return [best.library, because(best), alternatives];
}

/** The documentation, following one redirect to a moved library. */
function fetch(client: Client, library: Library, query: string): [Chosen, Docs] {
  let current = library;
  let redirected = false;
  for (;;) {
    try {
      return [chosen(current), client.context(current.id, query)];
    } catch (e) {
      if (!(e instanceof Context7Failure)) {
        throw e;
      }
      const failure = e.failure;
      if (failure.kind === "redirected" && !redirected) {
        log.info(`${current.id} moved to ${failure.id}`);
        redirected = true;
        current = { ...current, id: failure.id };
        continue;
      }
      if (failure.kind === "redirected") {
        throw AgentError.fatal(`${current.id} redirects again, to ${failure.id}: giving up after one redirect`);
      }
      const name = libraryName(current.id);
      let suggestions: Alternative[] = [];
      try {
        suggestions = rank(name, client.search(name, query))[0].slice(0, MAX_ALTERNATIVES).map(asAlternative);
      } catch {
        // No suggestions, then.
      }
      throw notFound(current.id, failure.message, suggestions);
    }
  }
}

/** The project part of an id: `/tokio-rs/axum@1` → `axum`. */
function libraryName(id: string): string {
  const repo = id.replace(/^\/+/, "").split("/")[1] ?? id;
  return repo.split("@")[0] ?? repo;
}

function chosen(library: Library): Chosen {
  const versions = library.versions ?? [];
  return {
    id: library.id,
    title: library.title ?? libraryName(library.id),
    version: idVersion(library.id),
    versions: versions.length > 0 ? versions : undefined,
    description: library.description ?? undefined,
    trustScore: library.trustScore ?? undefined,
    trust: trustLabel(library.trustScore ?? undefined),
    totalSnippets:
      library.totalSnippets === undefined || library.totalSnippets === null
        ? undefined
        : Math.max(0, Math.trunc(library.totalSnippets)),
  };
}

function notFound(what: string, message: string, suggestions: Alternative[]): AgentError {
  const hint =
    suggestions.length === 0
      ? ": check the name, or give a Context7 id such as /tokio-rs/axum"
      : `; did you mean ${suggestions.map((s) => (s.title === "" ? s.id : `${s.id} (${s.title})`)).join(", ")}?`;
  return AgentError.invalidInput(`library not found on Context7: \`${what}\` (${message})${hint}`, {
    details: { library: what, suggestions },
  });
}

/** A language model's answer from the snippets, citing them as [n]. */
function synthesize(
  config: LlmConfig,
  template: Template,
  ctx: Context,
  query: string,
  topic: string | undefined,
  library: Chosen,
  snippets: Snippet[],
) {
  const llm = new Llm(config, ctx);
  const [system, user] = render(template, {
    question: query,
    topic,
    libraryId: library.id,
    libraryTitle: library.title,
    libraryVersion: library.version,
    snippets,
  });
  const name = config.provider === "anthropic" ? "Anthropic" : "OpenAI";
  log.info(`asking ${name} (${config.model}) for an answer from ${snippets.length} snippets`);
  const completion = llm.complete(system, user);
  return { text: completion.text.trim(), provider: config.provider, completion };
}
