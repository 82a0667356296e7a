/**
 * Write orchestr8 agents in TypeScript. An agent is a WebAssembly component
 * built with ComponentizeJS against the `orchestr8:agent` WIT world; this
 * package hides the WIT plumbing. Describe the input and output with zod,
 * implement `process`, and export the agent as the component's `handler`:
 *
 * ```ts
 * import { z } from "zod";
 * import { AgentError, defineAgent, log } from "@orchestr8/agent";
 *
 * export const handler = defineAgent({
 *   id: "@example/greeter",
 *   version: "0.1.0",
 *   description: "Greets whoever it is given.",
 *   input: z.object({ name: z.string().describe("Who to greet.") }),
 *   output: z.object({ greeting: z.string() }),
 *   process(input, ctx) {
 *     if (!input.name.trim()) throw AgentError.invalidInput("name must not be empty");
 *     log.info("greeting someone", { name: input.name });
 *     return { greeting: `Hello, ${input.name}!` };
 *   },
 * });
 * ```
 *
 * Every call runs in a fresh sandbox: keep no state between calls. What the
 * agent may touch (secrets, outbound hosts) is granted by the host.
 */

/// <reference path="./wit.d.ts" />
/// <reference path="./assets.d.ts" />

export { defineAgent } from "./agent.js";
export type { AgentDefinition, AgentInfo, Handler, Invocation } from "./agent.js";
export { Context } from "./context.js";
export { AgentError, SecretError } from "./errors.js";
export type { ErrorKind, ErrorOptions, SecretReason } from "./errors.js";
export { HttpError, Response } from "./http.js";
export type { HttpErrorReason, RequestOptions } from "./http.js";
export * as http from "./http.js";
export { Llm, LlmConfig, Provider } from "./llm.js";
export type { Completion } from "./llm.js";
export * as log from "./log.js";
