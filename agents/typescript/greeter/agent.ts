// A TypeScript agent written with the SDK: greets, and says which attempt it is.
import { z } from "zod";

import { AgentError, defineAgent, log } from "@orchestr8/agent";

export const handler = defineAgent({
  id: "@orchestr8/ts-greeter",
  version: "0.1.0",
  description: "Greets whoever it is given (a TypeScript agent).",
  input: z.object({
    name: z.string().describe("Who to greet."),
    shout: z.boolean().default(false),
  }),
  output: z.object({ greeting: z.string(), attempt: z.number().int() }),
  process(input, ctx) {
    if (!input.name.trim()) {
      throw AgentError.invalidInput("name must not be empty");
    }
    log.info("greeting someone", { name: input.name });
    const greeting = `Hello, ${input.name}!`;
    return { greeting: input.shout ? greeting.toUpperCase() : greeting, attempt: ctx.attempt };
  },
});
