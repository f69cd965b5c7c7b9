;; loop.wat: the smallest infinite loop (no WASI I/O); only an interruption stops it.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $forever (br $forever))))
