/*
 * csvts.c — load `timestamp,value` CSV files and parse their timestamps.
 *
 * The file is read whole into memory (bounded by a byte cap) and tokenised
 * by a small RFC 4180 state machine over the buffer, so quoted fields with
 * commas or line breaks work and every row remembers where its timestamp
 * bytes are. Only the columns asked for are decoded.
 *
 * Deliberately not done here: sorting, de-duplicating or resampling rows
 * (the model decides what to do with late or repeated samples), guessing
 * header-less files, or locale-dependent number formats (always '.').
 * No third-party library; strtod() in the C locale parses numbers.
 */
#include "csvts.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Longest timestamp or number field decoded (a quoted field is unescaped
 * into a buffer of this size); longer ones are malformed. */
#define FIELD_MAX 128

/* Seconds/ms boundary of numeric timestamps; see csvts.h. */
#define MS_MAGNITUDE 1e11

/* 9999-12-31T23:59:59.999Z and 0000-01-01T00:00:00Z in ms. */
#define MS_MAX INT64_C(253402300799999)
#define MS_MIN INT64_C(-62167219200000)

static void fmt(char *buf, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));

static void fmt(char *buf, size_t cap, const char *f, ...)
{
    va_list ap;
    if (!buf || cap == 0)
        return;
    va_start(ap, f);
    vsnprintf(buf, cap, f, ap);
    va_end(ap);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_blank(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_blank((*s)[*len - 1]))
        (*len)--;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's civil
 * calendar algorithm: shift the year to start in March so the leap day is
 * last). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

/* Read exactly n digits at *p (bounded by end) into *out. */
static bool digits(const char **p, const char *end, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (*p >= end || !isdigit((unsigned char)**p))
            return false;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return true;
}

static bool looks_like_date(const char *s, size_t len)
{
    return len >= 10 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) &&
           isdigit((unsigned char)s[2]) && isdigit((unsigned char)s[3]) && s[4] == '-';
}

static int parse_date_time(const char *s, size_t len, int64_t *ms, const char **why)
{
    const char *p = s, *end = s + len;
    int y, mo, d, h, mi, sec, frac_ms = 0, off_min = 0;

    if (!digits(&p, end, 4, &y) || p >= end || *p++ != '-' || !digits(&p, end, 2, &mo) ||
        p >= end || *p++ != '-' || !digits(&p, end, 2, &d)) {
        *why = "bad date, want YYYY-MM-DD";
        return -1;
    }
    if (p >= end || (*p != 'T' && *p != 't' && *p != ' ')) {
        *why = "date without time, want YYYY-MM-DD HH:MM:SS";
        return -1;
    }
    p++;
    if (!digits(&p, end, 2, &h) || p >= end || *p++ != ':' || !digits(&p, end, 2, &mi) ||
        p >= end || *p++ != ':' || !digits(&p, end, 2, &sec)) {
        *why = "bad time of day, want HH:MM:SS";
        return -1;
    }
    if (p < end && *p == '.') {
        p++;
        int nd = 0;
        while (p < end && isdigit((unsigned char)*p)) {
            if (nd < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (nd == 0) {
            *why = "no digits after the decimal point";
            return -1;
        }
        for (; nd < 3; nd++)
            frac_ms *= 10;
    }
    while (p < end && is_blank(*p))
        p++;
    if (p < end) {
        if ((*p == 'Z' || *p == 'z') && p + 1 == end) {
            p++;
        } else if (end - p == 3 && strncmp(p, "UTC", 3) == 0) {
            p += 3;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1, oh, om;
            p++;
            if (!digits(&p, end, 2, &oh)) {
                *why = "bad zone offset, want +HH:MM";
                return -1;
            }
            if (p < end && *p == ':')
                p++;
            if (!digits(&p, end, 2, &om) || oh > 23 || om > 59) {
                *why = "bad zone offset, want +HH:MM";
                return -1;
            }
            off_min = sign * (oh * 60 + om);
        } else {
            *why = "unexpected text after the time";
            return -1;
        }
        if (p != end) {
            *why = "unexpected text after the zone";
            return -1;
        }
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) {
        *why = "no such date";
        return -1;
    }
    /* Second 60 is an RFC 3339 leap second; it reads as the next second. */
    if (h > 23 || mi > 59 || sec > 60) {
        *why = "no such time of day";
        return -1;
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    secs -= (int64_t)off_min * 60;
    *ms = secs * 1000 + frac_ms;
    if (*ms < MS_MIN || *ms > MS_MAX) {
        *why = "outside the years 0000..9999";
        return -1;
    }
    return 0;
}

static int parse_number_time(const char *s, size_t len, int64_t *ms, const char **why)
{
    const char *p = s, *end = s + len;
    int sign = 1;
    bool exponent = false;

    for (const char *q = s; q < end; q++)
        if (*q == 'e' || *q == 'E')
            exponent = true;
    if (exponent) {
        /* Rare (spreadsheet output); a double is exact enough here. */
        char buf[FIELD_MAX];
        char *e;
        memcpy(buf, s, len);
        buf[len] = '\0';
        errno = 0;
        double x = strtod(buf, &e);
        if (e != buf + len || errno || !isfinite(x)) {
            *why = "not a number or a date";
            return -1;
        }
        double m = fabs(x) >= MS_MAGNITUDE ? x : x * 1000.0;
        if (m < (double)MS_MIN || m > (double)MS_MAX) {
            *why = "outside the years 0000..9999";
            return -1;
        }
        *ms = (int64_t)m;
        return 0;
    }
    if (p < end && (*p == '+' || *p == '-')) {
        sign = *p == '-' ? -1 : 1;
        p++;
    }
    int64_t ip = 0;
    int nint = 0;
    while (p < end && isdigit((unsigned char)*p)) {
        if (ip > INT64_MAX / 100) {
            *why = "outside the years 0000..9999";
            return -1;
        }
        ip = ip * 10 + (*p - '0');
        nint++;
        p++;
    }
    /* Up to 6 fraction digits are kept (enough for ms of a seconds value). */
    int64_t frac = 0;
    int nfrac = 0;
    if (p < end && *p == '.') {
        p++;
        while (p < end && isdigit((unsigned char)*p)) {
            if (nfrac < 6) {
                frac = frac * 10 + (*p - '0');
                nfrac++;
            }
            p++;
        }
    }
    if (p != end || (nint == 0 && nfrac == 0)) {
        *why = "not a number or a date";
        return -1;
    }
    for (int i = nfrac; i < 6; i++)
        frac *= 10; /* frac is now in millionths */
    int64_t m;
    if ((double)ip >= MS_MAGNITUDE) {
        if (ip > MS_MAX + 1) {
            *why = "outside the years 0000..9999";
            return -1;
        }
        m = ip; /* sub-millisecond fraction truncated */
    } else {
        m = ip * 1000 + frac / 1000;
    }
    m *= sign;
    if (m < MS_MIN || m > MS_MAX) {
        *why = "outside the years 0000..9999";
        return -1;
    }
    *ms = m;
    return 0;
}

int csvts_parse_time(const char *s, size_t len, int64_t *ms, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    trim(&s, &len);
    if (len == 0) {
        *why = "empty timestamp";
        return -1;
    }
    if (len >= FIELD_MAX) {
        *why = "timestamp too long";
        return -1;
    }
    if (looks_like_date(s, len))
        return parse_date_time(s, len, ms, why);
    return parse_number_time(s, len, ms, why);
}

static bool eq_nocase(const char *s, size_t len, const char *word)
{
    size_t wl = strlen(word);
    if (len != wl)
        return false;
    for (size_t i = 0; i < len; i++)
        if (tolower((unsigned char)s[i]) != word[i])
            return false;
    return true;
}

int csvts_parse_value(const char *s, size_t len, double *v, bool *missing)
{
    char buf[FIELD_MAX];
    char *e;

    trim(&s, &len);
    *missing = false;
    if (len == 0 || eq_nocase(s, len, "nan") || eq_nocase(s, len, "null") ||
        eq_nocase(s, len, "na")) {
        *v = NAN;
        *missing = true;
        return 0;
    }
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* strtod also takes hex floats and "inf"; only plain decimals are
     * documented, but accepting the rest harms nobody. */
    errno = 0;
    double x = strtod(buf, &e);
    if (e != buf + len)
        return -1;
    if (!isfinite(x)) {
        *v = NAN;
        *missing = true;
        return 0;
    }
    *v = x;
    return 0;
}

/* One field of the record being tokenised. */
struct field {
    size_t off, len; /* raw bytes, quotes included */
    uint32_t line, col;
    bool quoted;
};

struct tokenizer {
    const char *buf;
    size_t len, pos;
    uint32_t line;     /* line of pos */
    size_t line_start; /* offset where that line starts */
};

/*
 * Tokenise the record at t->pos: records up to `want` fields into f[] (the
 * rest are counted only) and moves past the record's line end. Returns the
 * number of fields, 0 at end of input, -1 on a quoting error (message in err,
 * without the file name).
 */
static int next_record(struct tokenizer *t, struct field *f, int want, char *err, size_t errcap)
{
    if (t->pos >= t->len)
        return 0;
    int nf = 0;
    for (;;) {
        struct field cur = {t->pos, 0, t->line, (uint32_t)(t->pos - t->line_start + 1), false};
        if (t->pos < t->len && t->buf[t->pos] == '"') {
            cur.quoted = true;
            t->pos++;
            for (;;) {
                if (t->pos >= t->len) {
                    fmt(err, errcap, "%u:%u: unterminated quoted field", cur.line, cur.col);
                    return -1;
                }
                char c = t->buf[t->pos++];
                if (c == '"') {
                    if (t->pos < t->len && t->buf[t->pos] == '"') {
                        t->pos++;
                        continue;
                    }
                    break;
                }
                if (c == '\n') {
                    t->line++;
                    t->line_start = t->pos;
                }
            }
            /* Blanks may follow the closing quote; anything else is an error. */
            while (t->pos < t->len && is_blank(t->buf[t->pos]))
                t->pos++;
            if (t->pos < t->len && t->buf[t->pos] != ',' && t->buf[t->pos] != '\n' &&
                t->buf[t->pos] != '\r') {
                fmt(err, errcap, "%u:%u: unexpected character after a closing quote", t->line,
                    (unsigned)(t->pos - t->line_start + 1));
                return -1;
            }
            cur.len = t->pos - cur.off;
        } else {
            while (t->pos < t->len && t->buf[t->pos] != ',' && t->buf[t->pos] != '\n' &&
                   t->buf[t->pos] != '\r')
                t->pos++;
            cur.len = t->pos - cur.off;
        }
        if (nf < want)
            f[nf] = cur;
        nf++;
        if (t->pos >= t->len)
            return nf;
        char c = t->buf[t->pos++];
        if (c == ',')
            continue;
        if (c == '\r' && t->pos < t->len && t->buf[t->pos] == '\n')
            t->pos++;
        t->line++;
        t->line_start = t->pos;
        return nf;
    }
}

/* The decoded text of a field (quotes removed, "" unescaped) into buf;
 * returns its length, or -1 if it does not fit. */
static int field_text(const char *base, const struct field *f, char *buf, size_t cap)
{
    const char *s = base + f->off;
    size_t len = f->len;
    if (!f->quoted) {
        if (len >= cap)
            return -1;
        memcpy(buf, s, len);
        buf[len] = '\0';
        return (int)len;
    }
    /* Skip the opening quote; stop at the closing one. */
    size_t o = 0;
    for (size_t i = 1; i < len; i++) {
        if (s[i] == '"') {
            if (i + 1 < len && s[i + 1] == '"') {
                i++;
            } else {
                break;
            }
        }
        if (o + 1 >= cap)
            return -1;
        buf[o++] = s[i];
    }
    buf[o] = '\0';
    return (int)o;
}

static bool is_blank_record(const char *base, const struct field *f, int nf)
{
    if (nf != 1 || f[0].quoted)
        return false;
    for (size_t i = 0; i < f[0].len; i++)
        if (!is_blank(base[f[0].off + i]))
            return false;
    return true;
}

static bool header_is(const char *base, const struct field *f, const char *name)
{
    char buf[FIELD_MAX];
    int n = field_text(base, f, buf, sizeof buf);
    if (n < 0)
        return false;
    const char *s = buf;
    size_t len = (size_t)n;
    trim(&s, &len);
    return eq_nocase(s, len, name);
}

/* Fields tracked per record: timestamp, value and possibly an extra column
 * far to the right. Columns past it are only counted. */
#define MAX_TRACKED_COLUMNS 4096

static int parse_rows(struct csvts *c, const char *name, const struct csvts_options *opt, char *err,
                      size_t errcap)
{
    struct tokenizer t = {c->text, c->len, 0, 1, 0};
    struct field *f = NULL;
    int want = 2, extra_col = -1, ret = -1;
    size_t cap = 0;
    char msg[200];

    /* A UTF-8 byte-order mark is not part of the first header name. */
    if (t.len >= 3 && memcmp(t.buf, "\xEF\xBB\xBF", 3) == 0) {
        t.pos = 3;
        t.line_start = 3;
    }
    f = calloc(MAX_TRACKED_COLUMNS, sizeof *f);
    if (!f) {
        fmt(err, errcap, "%s: out of memory", name);
        goto fail;
    }

    /* Header. */
    int nf;
    do {
        nf = next_record(&t, f, MAX_TRACKED_COLUMNS, msg, sizeof msg);
        if (nf < 0) {
            fmt(err, errcap, "%s:%s", name, msg);
            goto fail;
        }
    } while (nf > 0 && is_blank_record(c->text, f, nf));
    if (nf == 0) {
        fmt(err, errcap, "%s: empty file, want a header `timestamp,value`", name);
        goto fail;
    }
    if (nf < 2 || !header_is(c->text, &f[0], "timestamp") || !header_is(c->text, &f[1], "value")) {
        fmt(err, errcap, "%s:%u:1: header must start with `timestamp,value`", name, f[0].line);
        goto fail;
    }
    if (opt->extra_column) {
        int lim = nf < MAX_TRACKED_COLUMNS ? nf : MAX_TRACKED_COLUMNS;
        for (int i = 2; i < lim && extra_col < 0; i++)
            if (header_is(c->text, &f[i], opt->extra_column))
                extra_col = i;
        if (extra_col < 0) {
            fmt(err, errcap, "%s:%u:1: no column named `%s` in the header", name, f[0].line,
                opt->extra_column);
            goto fail;
        }
        want = extra_col + 1;
    }

    int64_t last_t = 0;
    for (;;) {
        nf = next_record(&t, f, want, msg, sizeof msg);
        if (nf < 0) {
            fmt(err, errcap, "%s:%s", name, msg);
            goto fail;
        }
        if (nf == 0)
            break;
        if (is_blank_record(c->text, f, nf))
            continue;
        if (c->n == cap) {
            size_t ncap = cap ? cap * 2 : 1024;
            struct csvts_row *nr = realloc(c->rows, ncap * sizeof *nr);
            if (!nr) {
                fmt(err, errcap, "%s: out of memory", name);
                goto fail;
            }
            c->rows = nr;
            cap = ncap;
        }
        if (f[0].len > UINT32_MAX) {
            fmt(err, errcap, "%s:%u:1: field too long", name, f[0].line);
            goto fail;
        }
        struct csvts_row *r = &c->rows[c->n];
        memset(r, 0, sizeof *r);
        r->ts_off = f[0].off;
        r->ts_len = (uint32_t)f[0].len;
        r->line = f[0].line;
        r->v = NAN;
        r->extra = NAN;

        char buf[FIELD_MAX];
        const char *why = NULL;
        const struct field *bad = NULL;
        bool missing;
        int n;
        if (nf < 2) {
            why = "want at least 2 columns (timestamp,value)";
            bad = &f[0];
        } else if ((n = field_text(c->text, &f[0], buf, sizeof buf)) < 0 ||
                   csvts_parse_time(buf, (size_t)n, &r->t, &why) < 0) {
            if (!why)
                why = "timestamp too long";
            bad = &f[0];
        } else if ((n = field_text(c->text, &f[1], buf, sizeof buf)) < 0 ||
                   csvts_parse_value(buf, (size_t)n, &r->v, &missing) < 0) {
            why = "value is not a number";
            bad = &f[1];
        } else {
            if (missing) {
                r->flags |= CSVTS_MISSING;
                c->n_missing++;
            }
            if (extra_col >= 0) {
                if (nf <= extra_col) {
                    r->flags |= CSVTS_EXTRA_MISSING;
                } else if ((n = field_text(c->text, &f[extra_col], buf, sizeof buf)) < 0 ||
                           csvts_parse_value(buf, (size_t)n, &r->extra, &missing) < 0) {
                    why = "not a number";
                    bad = &f[extra_col];
                } else if (missing) {
                    r->flags |= CSVTS_EXTRA_MISSING;
                }
            }
        }
        if (bad) {
            char text[48];
            int tl = field_text(c->text, bad, text, sizeof text);
            if (tl < 0)
                snprintf(text, sizeof text, "(long field)");
            if (!opt->skip_bad_rows) {
                fmt(err, errcap, "%s:%u:%u: %s: \"%s\"", name, bad->line, bad->col, why, text);
                goto fail;
            }
            if (c->n_bad == 0)
                fmt(c->first_bad, sizeof c->first_bad, "%s:%u:%u: %s: \"%s\"", name, bad->line,
                    bad->col, why, text);
            if (r->flags & CSVTS_MISSING)
                c->n_missing--;
            r->flags = CSVTS_BAD;
            r->t = last_t;
            r->v = NAN;
            r->extra = NAN;
            c->n_bad++;
        } else {
            last_t = r->t;
        }
        c->n++;
    }
    ret = 0;
fail:
    free(f);
    return ret;
}

int csvts_load_buffer(struct csvts *c, const char *name, const char *data, size_t len,
                      const struct csvts_options *opt, char *err, size_t errcap)
{
    static const struct csvts_options defaults = {NULL, false, 0};
    struct csvts tmp;

    memset(&tmp, 0, sizeof tmp);
    if (!opt)
        opt = &defaults;
    size_t max = opt->max_bytes ? opt->max_bytes : CSVTS_DEFAULT_MAX_BYTES;
    if (len > max) {
        fmt(err, errcap, "%s: file is %zu bytes, over the limit of %zu (--max-file-bytes)", name,
            len, max);
        return -1;
    }
    tmp.text = malloc(len + 1);
    if (!tmp.text) {
        fmt(err, errcap, "%s: out of memory", name);
        return -1;
    }
    memcpy(tmp.text, data, len);
    tmp.text[len] = '\0';
    tmp.len = len;
    if (parse_rows(&tmp, name, opt, err, errcap) < 0) {
        csvts_cleanup(&tmp);
        return -1;
    }
    *c = tmp;
    return 0;
}

int csvts_load(struct csvts *c, const char *path, const struct csvts_options *opt, char *err,
               size_t errcap)
{
    static const struct csvts_options defaults = {NULL, false, 0};
    struct csvts tmp;
    struct stat st;
    FILE *fp = NULL;

    memset(&tmp, 0, sizeof tmp);
    if (!opt)
        opt = &defaults;
    size_t max = opt->max_bytes ? opt->max_bytes : CSVTS_DEFAULT_MAX_BYTES;
    fp = fopen(path, "rb");
    if (!fp) {
        fmt(err, errcap, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fileno(fp), &st) < 0) {
        fmt(err, errcap, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        fmt(err, errcap, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)st.st_size > (uint64_t)max) {
        fmt(err, errcap, "%s: file is %lld bytes, over the limit of %zu (--max-file-bytes)", path,
            (long long)st.st_size, max);
        goto fail;
    }
    size_t len = (size_t)st.st_size;
    tmp.text = malloc(len + 1);
    if (!tmp.text) {
        fmt(err, errcap, "%s: out of memory", path);
        goto fail;
    }
    /* The file may shrink while read; what was read is what counts. */
    tmp.len = fread(tmp.text, 1, len, fp);
    if (ferror(fp)) {
        fmt(err, errcap, "%s: read error", path);
        goto fail;
    }
    tmp.text[tmp.len] = '\0';
    fclose(fp);
    fp = NULL;
    if (parse_rows(&tmp, path, opt, err, errcap) < 0)
        goto fail;
    *c = tmp;
    return 0;
fail:
    if (fp)
        fclose(fp);
    csvts_cleanup(&tmp);
    return -1;
}

void csvts_cleanup(struct csvts *c)
{
    if (!c)
        return;
    free(c->text);
    free(c->rows);
    memset(c, 0, sizeof *c);
}
