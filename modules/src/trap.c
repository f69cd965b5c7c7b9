/* trap: print a line, then execute `unreachable` (a WebAssembly trap). */
#include <stdio.h>

int main(void) {
    printf("about to trap\n");
    fflush(stdout);
    __builtin_trap();
}
