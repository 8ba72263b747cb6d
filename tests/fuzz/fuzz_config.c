/*
 * fuzz_config.c — libFuzzer target for the configuration loader.
 *
 * Any bytes: loading must not crash, leak or run away (the loader's own
 * bounds keep every input cheap). Error output must be whole lines of
 * `name:...` text. A config that loads is exercised: rule matching, and
 * every duration formats back to a parseable duration. The input is also
 * fed to the duration parser as a string.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_duration(int64_t ms)
{
    char buf[64];
    int64_t back = -1;
    config_format_duration(ms, buf, sizeof buf);
    if (ms >= 0 && (config_parse_duration(buf, &back) != 0 || back != ms))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char errbuf[8192];
    int nerr = -1;
    struct config *c =
        config_load_string("f.yml", (const char *)data, size, errbuf, sizeof errbuf, &nerr);
    if (!c) {
        if (nerr <= 0 || strncmp(errbuf, "f.yml", 5) != 0 || errbuf[strlen(errbuf) - 1] != '\n')
            abort();
    } else {
        if (nerr != 0)
            abort();
        struct label l[3] = {{"__name__", "up", 8, 2},
                             {"job", (const char *)data, 3, (uint32_t)(size < 64 ? size : 64)},
                             {"env", "prod", 3, 4}};
        (void)config_match_rule(c, l, 3);
        check_duration(c->global.step_ms);
        check_duration(c->global.evaluation_interval_ms);
        for (size_t i = 0; i < c->n_rules; i++) {
            const struct model_params *p = &c->rules[i].params;
            if (!c->rules[i].match || p->nhorizons < 0 || p->nhorizons > MODEL_MAX_HORIZONS ||
                p->nseasons < -1 || p->nseasons > MODEL_MAX_SEASONS || !(p->coverage > 0) ||
                !(p->coverage < 1))
                abort();
            for (int h = 0; h < p->nhorizons; h++)
                check_duration(p->horizon_ms[h]);
        }
        for (size_t i = 0; i < c->n_scalers; i++)
            if (c->scalers[i].min_replicas > c->scalers[i].max_replicas)
                abort();
        config_destroy(c);
    }

    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
        int64_t ms;
        if (config_parse_duration(s, &ms) == 0) {
            if (ms < 0)
                abort();
            check_duration(ms);
        }
        free(s);
    }
    return 0;
}
