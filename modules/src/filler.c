// filler FILE MIB: writes MIB mebibytes into FILE (in a preopened dir), flushing every 64 KiB, and says how
// far it got: the file-size limit test module (docs/security.md, "Limits of the linux runtime").
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: filler FILE MIB\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "wb");
    if (!f) {
        printf("open %s failed: %s\n", argv[1], strerror(errno));
        return 1;
    }
    static char buf[65536];
    memset(buf, 'x', sizeof buf);
    long chunks = atol(argv[2]) * 16;
    long long total = 0;
    for (long i = 0; i < chunks; i++) {
        size_t n = fwrite(buf, 1, sizeof buf, f);
        if (n < sizeof buf || fflush(f) != 0) {
            printf("wrote %lld bytes, then: %s\n", total, strerror(errno));
            fclose(f);
            return 1;
        }
        total += (long long)n;
    }
    fclose(f);
    printf("wrote %lld bytes\n", total);
    return 0;
}
