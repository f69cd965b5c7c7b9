/* spin: burn CPU for argv[1] million loop iterations (default 200), then print the count
 * (used to measure CPU throttling through args.resources). 64-bit counters: `long` is 32 bits
 * on wasm32, where 5000 million iterations overflowed it (it printed at once, having done none). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int64_t m = argc > 1 ? strtoll(argv[1], NULL, 10) : 200;
    volatile uint64_t x = 0;
    for (int64_t i = 0; i < m * INT64_C(1000000); i++) x += (uint64_t)i;
    printf("spun %" PRId64 " (%" PRIu64 ")\n", m, (uint64_t)x);
    return 0;
}
