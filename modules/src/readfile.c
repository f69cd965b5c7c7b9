/* readfile: print the contents of the file argv[1] (a path inside a preopened dir);
 * with argv[2], also write that text to argv[1] first. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: readfile PATH [TEXT]\n");
        return 2;
    }
    if (argc > 2) {
        FILE *w = fopen(argv[1], "w");
        if (!w) {
            printf("cannot write %s: %s\n", argv[1], strerror(errno));
            return 1;
        }
        fputs(argv[2], w);
        fclose(w);
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        printf("cannot open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    fclose(f);
    return 0;
}
