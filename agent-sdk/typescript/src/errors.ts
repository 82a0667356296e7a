/** How an agent fails: the three kinds the host's resilience chain knows. */

export type ErrorKind = "invalid-input" | "retryable" | "fatal";

export interface ErrorOptions {
  /** Structured details for people and machines (anything JSON can hold). */
  details?: unknown;
  /** For retryable errors: the earliest time a retry makes sense, in ms. */
  retryAfterMs?: number;
}

/**
 * A failure the host classifies by kind, never by its message: throw
 * `AgentError.invalidInput(…)` (the input or config is wrong: no retry can
 * help), `AgentError.retryable(…)` (transient: a retry may succeed) or
 * `AgentError.fatal(…)` (permanent). Never put secret values in the message
 * or the details.
 */
export class AgentError extends Error {
  readonly kind: ErrorKind;
  readonly details: unknown;
  readonly retryAfterMs: number | undefined;

  constructor(kind: ErrorKind, message: string, options: ErrorOptions = {}) {
    super(message);
    this.name = "AgentError";
    this.kind = kind;
    this.details = options.details;
    this.retryAfterMs = options.retryAfterMs;
  }

  static invalidInput(message: string, options: { details?: unknown } = {}): AgentError {
    return new AgentError("invalid-input", message, options);
  }

  static retryable(message: string, options: ErrorOptions = {}): AgentError {
    return new AgentError("retryable", message, options);
  }

  static fatal(message: string, options: { details?: unknown } = {}): AgentError {
    return new AgentError("fatal", message, options);
  }
}

/** Why a secret could not be read. */
export type SecretReason = "not-granted" | "not-set";

/**
 * A secret could not be read: `reason` is `"not-granted"` (the agent's grants
 * do not name it; the host records a denied capability) or `"not-set"`
 * (granted, but without a value here). Uncaught, it fails the call as fatal.
 */
export class SecretError extends AgentError {
  readonly secret: string;
  readonly reason: SecretReason;

  constructor(secret: string, reason: SecretReason) {
    const what = reason === "not-granted" ? "is not granted to this agent" : "is granted but has no value";
    super("fatal", `the secret \`${secret}\` ${what}`);
    this.name = "SecretError";
    this.secret = secret;
    this.reason = reason;
  }
}
