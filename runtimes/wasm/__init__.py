"""Support of the WebAssembly runtimes (linux, linux/min/*): channels, module files, module lifecycle."""
