/* wasi_misc misc ARGS...: argc/argv beyond argv[0], getenv, clocks (monotonic never goes back,
 * realtime is after 2020), random bytes (not all zero, two draws differ); prints "ok" lines so
 * that every engine prints the same. `wasi_misc exit N`: exit with code N. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "exit") == 0) {
        printf("exiting with %s\n", argv[2]);
        fflush(stdout);
        exit(atoi(argv[2]));
    }
    printf("argc %d\n", argc);
    for (int i = 1; i < argc; i++) printf("arg %d [%s]\n", i, argv[i]);
    const char *k = getenv("K");
    printf("K=%s missing=%s\n", k ? k : "(unset)", getenv("NOT_SET") ? "set" : "(unset)");
    struct timespec a, b, r;
    clock_gettime(CLOCK_MONOTONIC, &a);
    volatile unsigned x = 0;
    for (unsigned i = 0; i < 100000; i++) x += i;
    (void)x;
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long da = (long long)a.tv_sec * 1000000000LL + a.tv_nsec, db = (long long)b.tv_sec * 1000000000LL + b.tv_nsec;
    printf("monotonic %s\n", db >= da ? "ok" : "WENT BACK");
    clock_gettime(CLOCK_REALTIME, &r);
    printf("realtime %s\n", r.tv_sec > 1577836800 ? "ok" : "BEFORE 2020");
    unsigned char r1[16] = {0}, r2[16] = {0};
    int g1 = getentropy(r1, sizeof r1), g2 = getentropy(r2, sizeof r2);
    int zero = 1;
    for (int i = 0; i < 16; i++) zero &= r1[i] == 0;
    printf("random %s\n", g1 == 0 && g2 == 0 && !zero && memcmp(r1, r2, 16) ? "ok" : "BAD");
    return 0;
}
