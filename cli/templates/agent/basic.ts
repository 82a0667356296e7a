// {{id}}: greets whoever it is given.
//
// Every call runs in a fresh sandbox: keep no state between calls. The zod
// types below are also the JSON Schemas the host shows (`orchestr8 agent info`),
// and every input is checked against them before `process` runs.
import { z } from "zod";

import { AgentError, defineAgent, log } from "@orchestr8/agent";

export const handler = defineAgent({
  id: "{{id}}",
  version: "0.1.0",
  description: "Greets whoever it is given.",
  input: z.object({ name: z.string().describe("Who to greet.") }),
  output: z.object({ greeting: z.string().describe("The greeting.") }),
  process(input, ctx) {
    const name = input.name.trim();
    if (!name) {
      throw AgentError.invalidInput("`name` must not be empty");
    }
    log.info(`greeting ${name}`, { attempt: ctx.attempt });
    return { greeting: `Hello, ${name}!` };
  },
});
