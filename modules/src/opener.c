/* opener: `opener TOPIC r|w|rw ...` tries to open each topic and prints the result code
 * (tests channel grants: a topic the create message did not grant returns SL_EACCES). */
#include <stdio.h>
#include <string.h>
#include "silverline.h"

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        int32_t flags = 0;
        if (strchr(argv[i + 1], 'r')) flags |= SL_READ;
        if (strchr(argv[i + 1], 'w')) flags |= SL_WRITE;
        printf("open %s %s -> %d\n", argv[i], argv[i + 1], sl_open(argv[i], flags));
    }
    return 0;
}
