;; A WASI command that traps at once (unreachable): the benchmarking tests' failing run.
(module
  (memory (export "memory") 1)
  (func (export "_start") unreachable))
