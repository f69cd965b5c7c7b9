/* echo: receive on argv[1] (default "echo/in"), publish each message on argv[2] (default
 * "echo/out"); the message "exit" ends it. Prints "ready" once both channels are open. */
#include <stdio.h>
#include <string.h>
#include "silverline.h"

int main(int argc, char **argv) {
    const char *in = argc > 1 ? argv[1] : "echo/in";
    const char *out = argc > 2 ? argv[2] : "echo/out";
    int32_t rfd = sl_open(in, SL_READ), wfd = sl_open(out, SL_WRITE);
    if (rfd < 0 || wfd < 0) {
        printf("open failed: %s=%d %s=%d\n", in, rfd, out, wfd);
        return 2;
    }
    printf("ready\n");
    fflush(stdout);
    static char buf[65536];
    long n_msgs = 0;
    for (;;) {
        int32_t n = sl_receive(rfd, buf, sizeof buf, SL_FOREVER);
        if (n < 0) {
            printf("receive failed: %d\n", n);
            return 3;
        }
        if (n > (int32_t)sizeof buf) n = sizeof buf;
        if (n == 4 && memcmp(buf, "exit", 4) == 0) break;
        if (sl_publish(wfd, buf, (size_t)n) < 0) return 4;
        n_msgs++;
    }
    printf("echoed %ld\n", n_msgs);
    sl_close(rfd);
    sl_close(wfd);
    return 0;
}
