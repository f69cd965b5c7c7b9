/* memhog: allocate and touch 1 MiB blocks until allocation fails, then abort (a trap);
 * argv[1] caps the number of blocks (default: unlimited). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *blocks[65536]; /* kept so that the compiler cannot drop the allocations */

int main(int argc, char **argv) {
    long cap = argc > 1 ? atol(argv[1]) : -1;
    long mib = 0;
    for (; (cap < 0 || mib < cap) && mib < 65536; mib++) {
        char *p = malloc(1 << 20);
        if (!p) {
            printf("allocation failed after %ld MiB\n", mib);
            fflush(stdout);
            abort();
        }
        memset(p, (int)mib, 1 << 20);
        blocks[mib] = p;
    }
    long sum = 0;
    for (long i = 0; i < mib; i++) sum += ((volatile char *)blocks[i])[i & 0xfffff];
    printf("allocated %ld MiB (%ld)\n", mib, sum);
    return 0;
}
