/* A CPU kernel of adjustable length for timing tests: argv[1] = iterations (millions). */
#include <stdlib.h>
int main(int argc, char **argv) {
    long m = argc > 1 ? atol(argv[1]) : 10;
    volatile unsigned long x = 1;
    for (long i = 0; i < m * 1000000L; i++) x = x * 6364136223846793005UL + 1442695040888963407UL;
    return (int)(x & 1) * 0;
}
