/*
 * main.c — command line, module wiring, start and stop order.
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("promcast, version %s\n", PROMCAST_VERSION);
        return 0;
    }
    fprintf(stderr, "promcast: not wired yet\n");
    return 1;
}
