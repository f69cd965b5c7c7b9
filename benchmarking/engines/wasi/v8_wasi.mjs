// One benchmark run on V8 through Node's node:wasi (preview1), exec'd by the harness:
//   node --no-warnings (--liftoff --liftoff-only | --no-liftoff) v8_wasi.mjs SPEC_JSON
// SPEC_JSON: {"file", "argv", "env", "dirs", "result_fd", "trap_exit"}. Dirs are [HOST, GUEST] pairs, preopened at GUEST
// (usually the same path). Exit code = the module's; a trap prints its message to stderr and exits `trap_exit`.
// Phase timings (compile, instantiate, execute in ns) go as one JSON line to `result_fd`.
// Why the flags: in tiered mode one long main() never reaches TurboFan (on-stack replacement
// does not happen for wasm), so each tier is measured on its own.
import { readFileSync, writeSync } from "node:fs";
import { WASI } from "node:wasi";
import { hrtime } from "node:process";

const spec = JSON.parse(process.argv[2]);
const preopens = {};
for (const [host, guest] of spec.dirs) preopens[guest] = host;  // [HOST, GUEST] pairs (runtimes/files.py)
const wasi = new WASI({ version: "preview1", args: spec.argv, env: spec.env, preopens, returnOnExit: true });
let code = 0;
const t0 = hrtime.bigint();
const module = await WebAssembly.compile(readFileSync(spec.file));
const t1 = hrtime.bigint();
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
const t2 = hrtime.bigint();
try {
  code = wasi.start(instance);
} catch (e) {
  process.stderr.write(`wasm trap: ${e && e.message}\n`);
  code = spec.trap_exit;
}
const t3 = hrtime.bigint();
try {
  writeSync(spec.result_fd, JSON.stringify({ phases: {
    compile_ns: Number(t1 - t0), instantiate_ns: Number(t2 - t1), execute_ns: Number(t3 - t2) } }) + "\n");
} catch (e) { /* no result pipe: run by hand */ }
process.exitCode = code;
