/*
 * bench_wire.c — `promcast-bench wire`: throughput of the remote-write codec.
 *
 * Builds requests shaped like Prometheus's (node-exporter labels, ten per
 * series, one sample per TimeSeries, label sets repeating across requests),
 * then measures per CPU-second: snappy + decode, decode alone, snappy alone
 * and encode + snappy, for v1 and v2. It only measures; it never decides
 * pass or fail by time.
 *
 *   promcast-bench wire [--series N] [--requests R] [--seconds S]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wire_write.h"

int bench_wire_main(int argc, char **argv);

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One sorted node-exporter-like label set per series. */
struct gen {
    char text[16][64];
    struct label labels[10];
};

static void gen_series(struct gen *g, size_t i)
{
    static const char *modes[] = {"idle", "user",    "system", "iowait",
                                  "irq",  "softirq", "steal",  "nice"};
    snprintf(g->text[0], 64, "%zu", (i / 8) % 64);
    snprintf(g->text[1], 64, "10.0.%zu.%zu:9100", (i / 512) % 256, (i / 512 / 256) % 256 + 7);
    snprintf(g->text[2], 64, "node-exporter-%05zx", (i / 512) % 0xfffff);
    const char *v[10][2] = {
        {"__name__", "node_cpu_seconds_total"},
        {"container", "node-exporter"},
        {"cpu", g->text[0]},
        {"endpoint", "metrics"},
        {"instance", g->text[1]},
        {"job", "node-exporter"},
        {"mode", modes[i % 8]},
        {"namespace", "monitoring"},
        {"pod", g->text[2]},
        {"service", "node-exporter"},
    };
    for (int k = 0; k < 10; k++)
        g->labels[k] =
            (struct label){v[k][0], v[k][1], (uint32_t)strlen(v[k][0]), (uint32_t)strlen(v[k][1])};
}

struct body {
    void *z; /* snappy */
    size_t zlen;
    void *pb; /* raw protobuf */
    size_t pblen;
};

int bench_wire_main(int argc, char **argv)
{
    size_t nseries = 2000, nreq = 16;
    double seconds = 2.0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--series") == 0)
            nseries = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--requests") == 0)
            nreq = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = strtod(argv[i + 1], NULL);
        else {
            fprintf(stderr, "usage: wire [--series N] [--requests R] [--seconds S]\n");
            return 2;
        }
    }
    if (nseries == 0 || nreq == 0) {
        fprintf(stderr, "wire: --series and --requests must be > 0\n");
        return 2;
    }
    struct gen *gens = calloc(nseries * nreq, sizeof *gens);
    struct wire_series *ws = calloc(nseries * nreq, sizeof *ws);
    struct sample *smp = calloc(nseries * nreq, sizeof *smp);
    struct body *bodies = calloc(nreq * 2, sizeof *bodies);
    struct wire_encoder *enc = wire_encoder_create(64u << 20);
    struct wire_decoder *dec = wire_decoder_create(256u << 20);
    int rc = 1;
    if (!gens || !ws || !smp || !bodies || !enc || !dec)
        goto out;

    /* R different requests per protocol, each a slice of a larger fleet. */
    for (int proto = 1; proto <= 2; proto++) {
        for (size_t r = 0; r < nreq; r++) {
            for (size_t i = r * nseries; i < (r + 1) * nseries; i++) {
                gen_series(&gens[i], i);
                smp[i] = (struct sample){1700000000000 + (int64_t)(r * 15000), (double)(i * 7)};
                ws[i] = (struct wire_series){
                    .labels = gens[i].labels, .nlabels = 10, .nsamples = 1, .samples = &smp[i]};
            }
            const void *out;
            size_t outlen;
            if (wire_encode_write(enc, (enum wire_proto)proto, &ws[r * nseries], nseries, &out,
                                  &outlen) != 0) {
                fprintf(stderr, "wire: encode: %s\n", wire_encoder_error(enc));
                goto out;
            }
            struct body *b = &bodies[(size_t)(proto - 1) * nreq + r];
            b->z = malloc(outlen);
            if (b->z == NULL)
                goto out;
            memcpy(b->z, out, outlen);
            b->zlen = outlen;
            size_t cap = 0;
            char err[256];
            if (wire_snappy_uncompress(b->z, b->zlen, 64u << 20, &b->pb, &cap, &b->pblen, err,
                                       sizeof err) != WIRE_OK) {
                fprintf(stderr, "wire: %s\n", err);
                goto out;
            }
        }
    }

    printf("wire: %zu series x 10 labels, 1 sample each, %zu distinct requests\n", nseries, nreq);
    for (int proto = 1; proto <= 2; proto++) {
        struct body *bs = &bodies[(size_t)(proto - 1) * nreq];
        printf("v%d: request %zu bytes protobuf, %zu bytes snappy\n", proto, bs[0].pblen,
               bs[0].zlen);
        for (int mode = 0; mode < 4; mode++) {
            static const char *names[] = {"snappy+decode", "decode only", "snappy only",
                                          "encode+snappy"};
            uint64_t samples = 0;
            size_t iter = 0;
            void *tmp = NULL;
            size_t tmpcap = 0, tmplen;
            double t0 = cpu_seconds(), t1;
            do {
                for (size_t r = 0; r < nreq; r++, iter++) {
                    struct body *b = &bs[r];
                    struct wire_request req;
                    char err[256];
                    enum wire_err e = WIRE_OK;
                    if (mode == 0) {
                        e = wire_decode_write(dec, (enum wire_proto)proto, b->z, b->zlen, NULL,
                                              &req, err, sizeof err);
                        samples += req.nsamples;
                    } else if (mode == 1) {
                        e = wire_decode_write_raw(dec, (enum wire_proto)proto, b->pb, b->pblen,
                                                  NULL, &req, err, sizeof err);
                        samples += req.nsamples;
                    } else if (mode == 2) {
                        e = wire_snappy_uncompress(b->z, b->zlen, 64u << 20, &tmp, &tmpcap, &tmplen,
                                                   err, sizeof err);
                        samples += nseries;
                    } else {
                        const void *out;
                        size_t outlen;
                        if (wire_encode_write(enc, (enum wire_proto)proto, &ws[r * nseries],
                                              nseries, &out, &outlen) != 0) {
                            snprintf(err, sizeof err, "encode: %s", wire_encoder_error(enc));
                            e = WIRE_ERR_NOMEM;
                        }
                        samples += nseries;
                    }
                    if (e != WIRE_OK) {
                        fprintf(stderr, "wire: %s\n", err);
                        free(tmp);
                        goto out;
                    }
                }
                t1 = cpu_seconds();
            } while (t1 - t0 < seconds);
            free(tmp);
            printf("  %-14s %8.2f M samples/CPU-s  %8.1f us/request\n", names[mode],
                   (double)samples / (t1 - t0) / 1e6, (t1 - t0) / (double)iter * 1e6);
        }
    }
    rc = 0;
out:
    if (bodies) {
        for (size_t i = 0; i < nreq * 2; i++) {
            free(bodies[i].z);
            free(bodies[i].pb);
        }
    }
    free(bodies);
    free(gens);
    free(ws);
    free(smp);
    wire_encoder_destroy(enc);
    wire_decoder_destroy(dec);
    return rc;
}
