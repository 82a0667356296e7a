/** Defining an agent, and the `handler` export the host calls. */

import { z } from "zod";

import { Context } from "./context.js";
import { AgentError } from "./errors.js";
import { check, jsonSchema } from "./schema.js";

/** What an agent is: its identity, its typed input and output, its work. */
export interface AgentDefinition<I extends z.ZodType, O extends z.ZodType> {
  /** Identifier in `@scope/name` form, for example `@example/greeter`. */
  id: string;
  /** Semantic version, for example `0.1.0`. */
  version: string;
  /** One or two sentences on what the agent does. */
  description: string;
  /** The input's zod type: its JSON Schema is published, and every input is checked against it. */
  input: I;
  /** The output's zod type: its JSON Schema is published, and every output is checked against it. */
  output: O;
  /** Handles one invocation (may be async). Throw an `AgentError` to fail it. */
  process(input: z.output<I>, ctx: Context): z.input<O> | Promise<z.input<O>>;
}

/** The `agent-info` record of the WIT contract. */
export interface AgentInfo {
  id: string;
  version: string;
  description: string;
  inputSchema: string;
  outputSchema: string;
}

/** The `invocation` record of the WIT contract. */
export interface Invocation {
  executionId: string;
  stepId: string;
  attempt: number;
  deadlineUnixMs: bigint;
  config: string;
  input: string;
}

/** The `handler` interface of the WIT contract: export it as `handler`. */
export interface Handler {
  info(): AgentInfo;
  process(invocation: Invocation): string | Promise<string>;
}

/**
 * The component's `handler` export for an agent: `export const handler =
 * defineAgent({ … })` in the module `orchestr8 build` builds (`agent.ts`).
 */
export function defineAgent<I extends z.ZodType, O extends z.ZodType>(agent: AgentDefinition<I, O>): Handler {
  for (const field of ["id", "version", "description"] as const) {
    if (typeof agent[field] !== "string") {
      throw new TypeError(`the agent's ${field} must be a string`);
    }
  }
  // Computed once, when ComponentizeJS pre-initialises the component.
  const info: AgentInfo = {
    id: agent.id,
    version: agent.version,
    description: agent.description,
    inputSchema: jsonSchema(agent.input, "input"),
    outputSchema: jsonSchema(agent.output, "output"),
  };
  warm(agent.input);
  warm(agent.output);
  return {
    info: () => info,
    process(invocation: Invocation): string | Promise<string> {
      try {
        const out = run(agent, invocation);
        return typeof out === "string"
          ? out
          : out.catch((e: unknown) => {
              throw toWit(e);
            });
      } catch (e) {
        throw toWit(e);
      }
    },
  };
}

/**
 * Parses once now, while ComponentizeJS snapshots the engine: zod compiles
 * an object's parser on its first use, and every call starts from that
 * snapshot in a fresh sandbox, so compiling here spares each call ~2 ms.
 */
function warm(type: z.ZodType): void {
  try {
    type.safeParse({});
  } catch {
    // A refinement that throws on `{}`: nothing more to warm.
  }
}

function run<I extends z.ZodType, O extends z.ZodType>(
  agent: AgentDefinition<I, O>,
  invocation: Invocation,
): string | Promise<string> {
  const raw = parseJson(invocation.input, "input");
  const input = check(agent.input, raw);
  if (!input.ok) {
    throw AgentError.invalidInput(`input does not match ${agent.id}'s input schema: ${input.problems}`);
  }
  const config = parseJson(invocation.config || "{}", "config");
  const ctx = new Context({
    executionId: invocation.executionId,
    stepId: invocation.stepId,
    attempt: invocation.attempt,
    deadlineUnixMs: Number(invocation.deadlineUnixMs),
    config: typeof config === "object" && config !== null && !Array.isArray(config) ? (config as Record<string, unknown>) : {},
  });
  const produced = agent.process(input.value, ctx);
  // An agent that answers at once is answered without a promise: settling
  // one makes the engine run its job queue before the export returns, about
  // 0.1 ms of every call in a fresh sandbox (measured with ts-greeter).
  const finish = (value: unknown): string => {
    const output = check(agent.output, value);
    if (!output.ok) {
      // A bug in the agent, not in the input: the published schema must stay true.
      throw AgentError.fatal(`the output does not match ${agent.id}'s output schema: ${output.problems}`);
    }
    return JSON.stringify(output.value);
  };
  return isThenable(produced) ? Promise.resolve(produced).then(finish) : finish(produced);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw AgentError.invalidInput(`${what} is not JSON: ${(e as Error).message}`);
  }
}

/** The WIT `agent-error` variant for anything thrown by the agent. */
function toWit(e: unknown): { tag: string; val: { message: string; details?: string; retryAfterMs?: bigint } } {
  if (e instanceof AgentError) {
    return {
      tag: e.kind,
      val: {
        message: e.message,
        details: e.details === undefined ? undefined : JSON.stringify(e.details),
        retryAfterMs: e.retryAfterMs === undefined ? undefined : BigInt(Math.max(0, Math.round(e.retryAfterMs))),
      },
    };
  }
  // A bug in the agent: fatal, with the stack on stderr for the host's logs.
  const name = e instanceof Error ? e.name : typeof e;
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof Error && e.stack) {
    console.error(e.stack);
  }
  return { tag: "fatal", val: { message: `unhandled ${name}: ${message}` } };
}
