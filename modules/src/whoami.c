/* whoami: print the module's uuid (sl_get_uuid) and log a line through sl_log. */
#include <stdio.h>
#include "silverline.h"

int main(void) {
    char uuid[37];
    int32_t n = sl_get_uuid(uuid, sizeof uuid);
    printf("uuid=%s (%d)\n", n == 36 ? uuid : "?", n);
    sl_log(SL_LOG_INFO, "hello from whoami");
    return 0;
}
