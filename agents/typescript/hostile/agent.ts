// A TypeScript agent that misbehaves on request, to show that the sandbox's
// limits hold for JavaScript as they do for Rust: `allocate` grows memory
// without end, `spin` never returns, `raise` fails with an unhandled
// exception, `secret` reads a secret it may not have been granted, `retry`
// asks for a retry after a delay, `fetch` GETs `url` with the SDK's client
// and `fetch-global` with the global `fetch`.
import { z } from "zod";

import { AgentError, defineAgent, http } from "@orchestr8/agent";

export const handler = defineAgent({
  id: "@orchestr8/ts-hostile",
  version: "0.1.0",
  description: "Misbehaves on request (tests the sandbox with JavaScript).",
  input: z.object({
    do: z.enum(["allocate", "spin", "raise", "secret", "retry", "fetch", "fetch-global"]),
    name: z.string().default("API_KEY"),
    url: z.string().default(""),
  }),
  output: z.object({ value: z.string() }),
  async process(input, ctx) {
    switch (input.do) {
      case "allocate": {
        const hoard: Uint8Array[] = [];
        for (;;) {
          hoard.push(new Uint8Array(1 << 20).fill(1));
        }
      }
      case "spin": {
        let n = 0;
        for (;;) {
          n += 1;
        }
      }
      case "raise": {
        const missing = undefined as unknown as { field: string };
        return { value: missing.field };
      }
      case "secret":
        return { value: ctx.secret(input.name).slice(0, 0) + "read" };
      case "fetch": {
        const response = http.get(input.url, { headers: { "user-agent": "ts-hostile" }, timeoutMs: 5000 });
        return { value: `${response.status} ${response.text()}` };
      }
      case "fetch-global": {
        const response = await fetch(input.url);
        return { value: `${response.status} ${await response.text()}` };
      }
      case "retry":
        throw AgentError.retryable("upstream busy", { retryAfterMs: 1500 });
    }
  },
});
