// Builds one TypeScript (or JavaScript) agent into a WebAssembly component:
// type-checks it with the SDK, bundles it with esbuild into one ES module,
// then ComponentizeJS makes the component. Installed beside the pinned
// packages it uses (package.json, package-lock.json in this folder) by
// `orchestr8 build` and scripts/build-agents.
//
//   node build.mjs --entry agents/x/agent.ts --sdk <sdk dir> --wit <wit dir> --out x.wasm
//
// <sdk dir> holds the SDK's src/; <wit dir> the `orchestr8:agent` contract.
import { rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { componentize } from "@bytecodealliance/componentize-js";
import { build } from "esbuild";
import ts from "typescript";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const { values: args } = parseArgs({
  options: {
    entry: { type: "string" },
    sdk: { type: "string" },
    wit: { type: "string" },
    out: { type: "string" },
  },
});
if (!args.entry || !args.sdk || !args.wit || !args.out) {
  console.error("usage: node build.mjs --entry FILE --sdk DIR --wit DIR --out FILE.wasm");
  process.exit(2);
}
const entry = resolve(args.entry);
const sdkIndex = resolve(args.sdk, "src", "index.ts");
const out = resolve(args.out);

// Type errors fail the build, as tsc would report them.
if (entry.endsWith(".ts")) {
  const options = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    // The web APIs StarlingMonkey provides (fetch, URL, TextEncoder, console).
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts", "lib.esnext.disposable.d.ts"],
    types: [],
    paths: {
      "@orchestr8/agent": [sdkIndex],
      zod: [join(modules, "zod", "index.d.cts")],
    },
  };
  const program = ts.createProgram([entry], options);
  const diagnostics = ts.getPreEmitDiagnostics(program);
  if (diagnostics.length > 0) {
    const host = {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => process.cwd(),
      getNewLine: () => "\n",
    };
    const format = process.stderr.isTTY ? ts.formatDiagnosticsWithColorAndContext : ts.formatDiagnostics;
    console.error(format(diagnostics, host).trimEnd());
    console.error(`${diagnostics.length} type error(s) in ${args.entry}`);
    process.exit(1);
  }
}

const bundle = `${out}.js`;
try {
  await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    outfile: bundle,
    external: ["orchestr8:*", "wasi:*"],
    alias: { "@orchestr8/agent": sdkIndex },
    // Prompt templates and other text files, imported as strings.
    loader: { ".xml": "text", ".txt": "text", ".md": "text" },
    nodePaths: [modules],
    logLevel: "error",
  });
} catch {
  process.exit(1); // esbuild printed the errors
}
try {
  const { component } = await componentize({
    sourcePath: bundle,
    witPath: resolve(args.wit),
    worldName: "agent",
    // The agent exports `handler`, not an incoming HTTP handler.
    disableFeatures: ["fetch-event"],
  });
  await writeFile(`${out}.tmp`, component);
  await rename(`${out}.tmp`, out);
} catch (e) {
  console.error(`componentize failed: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
} finally {
  await rm(bundle, { force: true });
}
