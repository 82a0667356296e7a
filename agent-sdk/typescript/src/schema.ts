/**
 * JSON Schemas from zod types, and checks against them. The schemas the
 * host publishes and the checks made on a call come from the same zod
 * types, so they cannot drift apart.
 */

import { z } from "zod";

/** JSON Schema (2020-12) of `type`, as read (`input`) or as written (`output`). */
export function jsonSchema(type: z.ZodType, io: "input" | "output"): string {
  return JSON.stringify(z.toJSONSchema(type, { io, unrepresentable: "any" }));
}

/** `value` checked against `type`; on a mismatch, every problem with its path. */
export function check<T extends z.ZodType>(
  type: T,
  value: unknown,
): { ok: true; value: z.output<T> } | { ok: false; problems: string } {
  const parsed = type.safeParse(value);
  if (parsed.success) {
    return { ok: true, value: parsed.data };
  }
  const problems = parsed.error.issues.map((issue) => `${jsonPath(issue.path)}: ${issue.message}`);
  return { ok: false, problems: problems.join("; ") };
}

/** `$.items[2].name` for `["items", 2, "name"]`. */
function jsonPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "$";
  for (const segment of path) {
    if (typeof segment === "number") {
      out += `[${segment}]`;
    } else if (typeof segment === "string" && /^[A-Za-z_][A-Za-z0-9_]*$/.test(segment)) {
      out += `.${segment}`;
    } else {
      out += `[${JSON.stringify(String(segment))}]`;
    }
  }
  return out;
}
