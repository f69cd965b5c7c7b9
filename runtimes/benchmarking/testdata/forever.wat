;; forever: loops without end and without calling the host; only its time limit (or a delete) ends it
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $again
      (br $again))))
