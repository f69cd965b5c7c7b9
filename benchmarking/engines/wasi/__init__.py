"""Our WASI preview1 layers for engines without one:
- in Python, for pywasm3: layer.py (`Wasi`: the calls of proc.py, fd.py and path.py over state.py,
  on the ABI of abi.py), run on wasm3 by wasm3.py;
- in C, linked into wasm2c executables: wasi.c;
- v8_wasi.mjs runs a module under Node's node:wasi."""
