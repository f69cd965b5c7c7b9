/* Test kernel for opcode counting and benchmarking: loops, memory, calls, indirect calls
   (a table of function pointers), switch (br_table), floats, malloc, printf.
   argv[1] = problem size (default 20), argv[2] = "quiet" to skip the output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef long long (*op_fn)(long long, long long);
static long long op_add(long long a, long long b) { return a + b; }
static long long op_xor(long long a, long long b) { return a ^ (b << 1); }
static long long op_mix(long long a, long long b) { return a * 31 + b; }
static volatile op_fn ops[3] = {op_add, op_xor, op_mix};

static int classify(int x) {
    switch (x % 7) {
    case 0: return 3;
    case 1: return 1;
    case 2: return 4;
    case 3: return 1;
    case 4: return 5;
    case 5: return 9;
    default: return 2;
    }
}

static void matmul(int n, const double *a, const double *b, double *c) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += a[i * n + k] * b[k * n + j];
            c[i * n + j] = s;
        }
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20;
    int quiet = argc > 2 && strcmp(argv[2], "quiet") == 0;
    double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n), *c = malloc(sizeof(double) * n * n);
    for (int i = 0; i < n * n; i++) { a[i] = i % 13; b[i] = (i * 7) % 11; }
    matmul(n, a, b, c);
    long long acc = 0;
    for (int i = 0; i < n * n; i++) acc = ops[i % 3](acc, (long long)c[i] + classify(i));
    char *buf = malloc(256);
    memset(buf, 'x', 255);
    buf[255] = 0;
    acc += (long long)strlen(buf);
    if (!quiet) printf("n=%d acc=%lld\n", n, acc);
    free(a); free(b); free(c); free(buf);
    return (int)(acc & 0x3f);
}
