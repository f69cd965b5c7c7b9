/* spin: burn CPU for argv[1] million loop iterations (default 200), then print the count
 * (used to measure CPU throttling through args.resources). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long m = argc > 1 ? atol(argv[1]) : 200;
    volatile unsigned long x = 0;
    for (long i = 0; i < m * 1000000L; i++) x += (unsigned long)i;
    printf("spun %ld (%lu)\n", m, (unsigned long)x);
    return 0;
}
