/* args: print argv and the environment, one item a line, then exit with argv[1] as the
 * exit code when it is a number (used to test argv, env and exit codes). */
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; e && *e; e++) printf("env %s\n", *e);
    fflush(stdout);
    return argc > 1 ? atoi(argv[1]) : 0;
}
