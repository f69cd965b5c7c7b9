/* helloworld: the smallest WASI module; one line on stdout. */
#include <stdio.h>

int main(void) {
    printf("Hello, World!\n");
    return 0;
}
