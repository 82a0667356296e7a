/** What an agent knows about the call it is handling. */

import * as host from "orchestr8:agent/host@0.1.0";
import type { z } from "zod";

import { AgentError, SecretError } from "./errors.js";
import { check } from "./schema.js";

/**
 * One invocation: its ids, attempt, deadline and configuration, and the host
 * services that depend on the call (secrets, cancellation).
 */
export class Context {
  /** The workflow execution (a fresh id for a call outside any workflow). */
  readonly executionId: string;
  /** The workflow step (empty outside a workflow). */
  readonly stepId: string;
  /** 1 for the first attempt; a retry of the same step has 2, 3, … */
  readonly attempt: number;
  /** When the host stops this attempt, in ms since the Unix epoch. */
  readonly deadlineUnixMs: number;
  /** The agent's configuration from the workflow or project (an object). */
  readonly config: Record<string, unknown>;

  constructor(fields: {
    executionId: string;
    stepId: string;
    attempt: number;
    deadlineUnixMs: number;
    config: Record<string, unknown>;
  }) {
    this.executionId = fields.executionId;
    this.stepId = fields.stepId;
    this.attempt = fields.attempt;
    this.deadlineUnixMs = fields.deadlineUnixMs;
    this.config = fields.config;
  }

  /**
   * `<execution id>:<step id>`: the same for every attempt of this step, also
   * after its execution is resumed in another process (a step that was
   * running when its host died runs again). An agent with effects outside (a
   * payment, an email) sends it along, or keeps it, so doing the work twice
   * has the effect once.
   */
  idempotencyKey(): string {
    return `${this.executionId}:${this.stepId}`;
  }

  /**
   * The configuration read with a zod type; a mismatch is an invalid-input
   * error naming the field.
   */
  configAs<T extends z.ZodType>(type: T): z.output<T> {
    const checked = check(type, this.config);
    if (!checked.ok) {
      throw AgentError.invalidInput(`invalid config: ${checked.problems}`);
    }
    return checked.value;
  }

  /** Milliseconds until the deadline (0 once it has passed). */
  timeLeftMs(): number {
    return Math.max(0, this.deadlineUnixMs - Date.now());
  }

  /** True once the execution has been cancelled: return early. */
  isCancelled(): boolean {
    return host.isCancelled();
  }

  /**
   * A granted secret's value. Throws `SecretError`. Never log the value or
   * return it in the output.
   */
  secret(name: string): string {
    try {
      return host.getSecret(name);
    } catch (e) {
      const payload = (e as { payload?: unknown }).payload;
      throw new SecretError(name, payload === "not-granted" ? "not-granted" : "not-set");
    }
  }
}
