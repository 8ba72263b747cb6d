/*
 * bench_main.c — promcast-bench: one tool, one subcommand per benchmark file.
 *
 *   promcast-bench ingest ...   remote-write ingest vs Prometheus's receiver
 *   promcast-bench model ...    model update cost and state size
 *   promcast-bench series ...   series index lookup/insert cost and memory
 *   promcast-bench wire ...     decoder throughput
 *
 * Subcommand entry points are weak so a benchmark file can be added or
 * removed without touching this dispatcher.
 */
#include <stdio.h>
#include <string.h>

int bench_ingest_main(int argc, char **argv) __attribute__((weak));
int bench_model_main(int argc, char **argv) __attribute__((weak));
int bench_series_main(int argc, char **argv) __attribute__((weak));
int bench_wire_main(int argc, char **argv) __attribute__((weak));

struct sub {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
};

int main(int argc, char **argv)
{
    const struct sub subs[] = {
        {"ingest", bench_ingest_main, "remote-write ingest, promcast vs Prometheus's receiver"},
        {"model", bench_model_main, "model update cost per sample and state bytes"},
        {"series", bench_series_main, "series index cost per sample and bytes per series"},
        {"wire", bench_wire_main, "remote-write decoder throughput"},
    };
    if (argc >= 2) {
        for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
            if (subs[i].fn && strcmp(argv[1], subs[i].name) == 0)
                return subs[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "usage: promcast-bench SUBCOMMAND [args]\n");
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (subs[i].fn)
            fprintf(stderr, "  %-8s %s\n", subs[i].name, subs[i].what);
    return 2;
}
