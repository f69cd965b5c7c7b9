/* pingpong: `pingpong ping|pong IN OUT ROUNDS`. "ping" publishes first and waits for each
 * answer; "pong" answers every message. Both print "done ROUNDS" at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "silverline.h"

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: pingpong ping|pong IN OUT ROUNDS\n");
        return 2;
    }
    int ping = strcmp(argv[1], "ping") == 0;
    int32_t rfd = sl_open(argv[2], SL_READ), wfd = sl_open(argv[3], SL_WRITE);
    long rounds = atol(argv[4]);
    if (rfd < 0 || wfd < 0) {
        printf("open failed: %d %d\n", rfd, wfd);
        return 2;
    }
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    for (long i = 0; i < rounds; i++) {
        if (ping) {
            /* the peer may not be listening yet: resend until it answers */
            int32_t n;
            do {
                int len = snprintf(buf, sizeof buf, "ping %ld", i);
                sl_publish(wfd, buf, (size_t)len);
                n = sl_receive(rfd, buf, sizeof buf, 200);
            } while (n == SL_ETIMEDOUT);
            if (n < 0) return 3;
        } else {
            int32_t n = sl_receive(rfd, buf, sizeof buf, SL_FOREVER);
            if (n < 0) return 3;
            sl_publish_str(wfd, "pong");
        }
    }
    printf("done %ld\n", rounds);
    return 0;
}
