;; SIMD (0xFD prefix): loads, stores, lane ops, shuffle, arithmetic in a loop
(module
  (memory 1)
  (func (export "_start") (local $i i32) (local $v v128)
    (local.set $v (v128.const i32x4 1 2 3 4))
    (loop $l
      (v128.store (i32.shl (local.get $i) (i32.const 4))
        (i32x4.add (local.get $v) (i32x4.splat (local.get $i))))
      (local.set $v (i8x16.shuffle 4 5 6 7 0 1 2 3 12 13 14 15 8 9 10 11
        (v128.load (i32.shl (local.get $i) (i32.const 4))) (local.get $v)))
      (local.set $v (i32x4.replace_lane 2 (local.get $v) (i32.add (i32x4.extract_lane 1 (local.get $v)) (i32.const 1))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 50))))
    (i32.store (i32.const 0) (i32x4.extract_lane 0 (local.get $v)))))
