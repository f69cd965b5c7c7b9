"""Our WASI preview1 layers for engines without one: wasm3.py (Python, for pywasm3) and wasi.c (C,
linked into wasm2c executables); v8_wasi.mjs runs a module under Node's node:wasi."""
