/* kernels KIND N [timed]: compute kernels of different kinds, each printing a checksum (and with
 * `timed`, the kernel's own time on the WASI monotonic clock, for bench/engines.py):
 *   matmul N  integer N x N matrix product (loops, memory);
 *   fib N     naive recursive Fibonacci (calls);
 *   crc N     CRC-32 of N pseudo-random bytes, table driven (loads, bit operations);
 *   nbody N   N steps of a 5-body simulation in double precision (floats, sqrt). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint32_t matmul(int n) {
    uint32_t *a = malloc(sizeof(uint32_t) * n * n), *b = malloc(sizeof(uint32_t) * n * n), *c = malloc(sizeof(uint32_t) * n * n);
    for (int i = 0; i < n * n; i++) { a[i] = (uint32_t)(i * 7 + 3) % 101; b[i] = (uint32_t)(i * 13 + 5) % 97; }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            uint32_t s = 0;
            for (int k = 0; k < n; k++) s += a[i * n + k] * b[k * n + j];
            c[i * n + j] = s;
        }
    uint32_t h = 0;
    for (int i = 0; i < n * n; i++) h = h * 31 + c[i];
    free(a); free(b); free(c);
    return h;
}

static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static uint32_t crc(int n) {
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    unsigned char *buf = malloc(n);
    uint32_t x = 2463534242u;
    for (int i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; buf[i] = (unsigned char)x; }
    uint32_t c = 0xFFFFFFFFu;
    for (int i = 0; i < n; i++) c = table[(c ^ buf[i]) & 0xFF] ^ (c >> 8);
    free(buf);
    return c ^ 0xFFFFFFFFu;
}

static double nbody(int steps) {
    double p[5][3] = {{0, 0, 0}, {4.84, -1.16, -0.10}, {8.34, 4.12, -0.40}, {12.89, -15.11, -0.22}, {15.37, -25.91, 0.17}};
    double v[5][3] = {{0, 0, 0}, {0.606, 2.81, -0.02}, {-1.01, 1.82, 0.008}, {1.08, 0.868, -0.01}, {0.979, 0.594, -0.034}};
    double m[5] = {39.47, 0.037, 0.011, 0.0017, 0.002};
    const double dt = 0.01;
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < 5; i++)
            for (int j = i + 1; j < 5; j++) {
                double d[3], d2 = 0;
                for (int k = 0; k < 3; k++) { d[k] = p[i][k] - p[j][k]; d2 += d[k] * d[k]; }
                double mag = dt / (d2 * sqrt(d2));
                for (int k = 0; k < 3; k++) { v[i][k] -= d[k] * m[j] * mag; v[j][k] += d[k] * m[i] * mag; }
            }
        for (int i = 0; i < 5; i++)
            for (int k = 0; k < 3; k++) p[i][k] += dt * v[i][k];
    }
    double e = 0;
    for (int i = 0; i < 5; i++) e += 0.5 * m[i] * (v[i][0] * v[i][0] + v[i][1] * v[i][1] + v[i][2] * v[i][2]);
    return e;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: kernels matmul|fib|crc|nbody N\n"); return 2; }
    int n = atoi(argv[2]);
    long long t0 = now_ns();
    if (!strcmp(argv[1], "matmul")) printf("matmul %d: %u\n", n, matmul(n));
    else if (!strcmp(argv[1], "fib")) printf("fib %d: %ld\n", n, fib(n));
    else if (!strcmp(argv[1], "crc")) printf("crc %d: %08x\n", n, crc(n));
    else if (!strcmp(argv[1], "nbody")) printf("nbody %d: %.9f\n", n, nbody(n));
    else { fprintf(stderr, "kernels: unknown kind %s\n", argv[1]); return 2; }
    if (argc > 3 && !strcmp(argv[3], "timed")) printf("elapsed_ns %lld\n", now_ns() - t0);
    return 0;
}
