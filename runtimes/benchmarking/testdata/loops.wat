;; nested loops, br_if, block/br, if/else, locals: sums i*j with branches
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $work (param $n i32) (result i32)
    (local $i i32) (local $j i32) (local $acc i32)
    (block $done
      (loop $outer
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $j (i32.const 0))
        (loop $inner
          (if (i32.and (local.get $j) (i32.const 1))
            (then (local.set $acc (i32.add (local.get $acc) (i32.mul (local.get $i) (local.get $j)))))
            (else (local.set $acc (i32.xor (local.get $acc) (local.get $j)))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $inner (i32.lt_u (local.get $j) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (local.get $acc))
  (func (export "_start")
    (drop (call $work (i32.const 40)))
    (if (i32.eqz (call $work (i32.const 7))) (then (unreachable)))
    (call $exit (i32.const 3))
    (unreachable)))
