/*
 * series.c — the series index: sharded hash tables of label sets, per-series
 * sample bookkeeping (out-of-order, duplicates, stale markers), idle
 * eviction, the active/modelled caps and the cached selection decision.
 *
 * Layout. The index is `nshards` shards (power of two, picked by the top
 * bits of the label-set hash), each a mutex plus an open-addressing table
 * with linear probing and backward-shift deletion (no tombstones), whose
 * 16-byte slots keep the full 64-bit hash beside the entry pointer, so a
 * probe dereferences an entry only on a full hash match and a resize never
 * re-hashes labels. A series is one allocation:
 *
 *   struct series (57-byte header) | per label: LEB128 value length, value bytes
 *
 * Label names live in an interned "schema": the sorted name list, shared by
 * every series with exactly those names (a metric family usually has one or
 * a few), refcounted and freed with its last series. Names are the most
 * repetitive part of a label set and schemas are few, so their table sits
 * behind one mutex touched only on insert and eviction. Values are kept
 * inline because most of their bytes are per-series (instance, pod, uid) and
 * comparing inline bytes on the hot path costs no extra cache misses.
 *
 * At 100k+ series a lookup is two dependent cache misses (slot, entry);
 * series_ingest_batch() overlaps them across a window of series.
 *
 * Memory accounting adds glibc's chunk size (request + size field, rounded
 * to 16) for every block the index owns, so series_index_memory_bytes()
 * tracks what the heap really spends, and returns exactly to its baseline.
 *
 * Not done here: decoding, label validation (the wire module does it), the
 * model itself (a `model` slot per entry is reserved; see MODEL HOOK), and
 * exporting counters (callers add up series_ingest_stats). Wraps no library:
 * the label-set hash is the index's own (series_hash(), seeded, read in
 * place), selection is config_match_rule() and selector_match().
 */
#include "series.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "limits.h"
#include "log.h"
#include "selector.h"

/* Tables never shrink below this many slots; 16 slots are 256 bytes. */
#define TABLE_MIN_CAP 16u

/* Stack room for label arrays outside the hot path (visit, empty-value
 * filtering); bigger sets use the heap. */
#define STACK_LABELS 64u

enum {
    SERIES_F_STALE = 1u << 0,    /* last accepted sample was a stale marker */
    SERIES_F_MODELLED = 1u << 1, /* holds one of the max_series model slots */
    SERIES_F_DENIED = 1u << 2,   /* matched a rule but was refused a slot (counted once) */
};

struct schema_name {
    const char *p; /* into the schema's own allocation */
    uint32_t len;
};

/* An interned, sorted list of label names. */
struct schema {
    uint64_t hash;
    size_t refs; /* series using it; under schema_lock */
    uint32_t n;
    struct schema_name names[]; /* then the name bytes */
};

struct series {
    const struct schema *schema;
    void *model;            /* model state owned through idx->hooks, or NULL */
    int64_t last_t;         /* last accepted sample, valid when nsamples > 0 */
    uint64_t last_bits;     /* its value bits (stale markers never touch an FPU) */
    int64_t last_seen_ms;   /* now_ms of the last ingest, for the idle TTL */
    uint64_t nsamples;      /* accepted samples */
    uint32_t rule_gen;      /* rules generation `rule` was decided under */
    int32_t rule;           /* index into the deciding config's rules, -1 = none */
    uint8_t flags;          /* SERIES_F_* */
    unsigned char values[]; /* per label: LEB128 length, bytes */
};

struct slot {
    uint64_t hash;
    void *p; /* NULL = empty */
};

struct table {
    struct slot *slots;
    size_t cap; /* power of two */
    size_t count;
};

struct shard {
    _Alignas(64) pthread_mutex_t lock; /* own cache line(s): no false sharing */
    struct table t;
    const struct config *cfg; /* rules in force for this shard */
    uint32_t rules_gen;
    /* Copies of t.slots and t.cap - 1, written under the lock, read without
     * it only to prefetch (series_ingest_batch). */
    _Atomic(struct slot *) hint_slots;
    _Atomic size_t hint_mask;
};

struct series_index {
    struct shard *shards;
    unsigned nshards;
    uint64_t (*hash)(const struct label *labels, size_t n); /* test hook, else NULL */
    uint64_t seed, key;               /* series_hash() keys, random per index */
    struct series_model_hooks *hooks; /* NULL: nothing is modelled */

    _Atomic size_t max_active;
    _Atomic size_t max_modelled;
    _Atomic int64_t idle_ttl_ms;

    _Atomic size_t active;
    _Atomic size_t modelled;
    _Atomic size_t memory;

    pthread_mutex_t rules_lock; /* serialises set_rules */
    uint32_t rules_gen;

    pthread_mutex_t schema_lock; /* lock order: shard lock, then schema_lock */
    struct table schemas;
};

/* ---- memory accounting ------------------------------------------------- */

/* The heap bytes one allocation of `req` bytes costs: glibc's chunk size
 * (request plus the 8-byte size field, rounded up to 16, at least 32).
 * Computed rather than read back with malloc_usable_size(), which can vary
 * for equal requests and would let the total drift. */
static size_t chunk_bytes(size_t req)
{
    size_t c = (req + sizeof(size_t) + 15) & ~(size_t)15;
    return c < 32 ? 32 : c;
}

static void mem_add(struct series_index *idx, size_t req)
{
    atomic_fetch_add_explicit(&idx->memory, chunk_bytes(req), memory_order_relaxed);
}

static void mem_free(struct series_index *idx, void *p, size_t req)
{
    if (!p)
        return;
    atomic_fetch_sub_explicit(&idx->memory, chunk_bytes(req), memory_order_relaxed);
    free(p);
}

/* ---- byte helpers -------------------------------------------------------- */

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t load32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Equality of short byte strings without a libc call: label names and values
 * are mostly under 32 bytes, where memcmp's call overhead dominates. */
static inline bool bytes_eq(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;
    if (n >= 8) {
        while (n > 8) {
            if (load64(p) != load64(q))
                return false;
            p += 8;
            q += 8;
            n -= 8;
        }
        return load64(p + n - 8) == load64(q + n - 8);
    }
    if (n >= 4)
        return load32(p) == load32(q) && load32(p + n - 4) == load32(q + n - 4);
    if (n == 0)
        return true;
    return p[0] == q[0] && p[n >> 1] == q[n >> 1] && p[n - 1] == q[n - 1];
}

static size_t varint_len(uint32_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static unsigned char *varint_put(unsigned char *p, uint32_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

static inline uint32_t varint_get(const unsigned char **pp)
{
    const unsigned char *p = *pp;
    uint32_t v = 0;
    unsigned shift = 0;
    while (*p & 0x80) {
        v |= (uint32_t)(*p++ & 0x7f) << shift;
        shift += 7;
    }
    v |= (uint32_t)*p++ << shift;
    *pp = p;
    return v;
}

/* ---- label-set hash -------------------------------------------------------- */

/*
 * The index's own label-set hash: a seeded multiply-fold over each name and
 * value read in place with (overlapping) 8-byte loads, lengths folded in so
 * that moving a byte across a name/value boundary changes the input. It is
 * ~3x faster than labels_hash(), which first copies the set into a canonical
 * buffer, and it is only ever compared with itself (slots keep it, shards are
 * picked by it). The seed is random per index and every multiplication
 * operand is keyed by it, so senders cannot precompute collisions that
 * would pile series into one probe run.
 */
__extension__ typedef unsigned __int128 u128;

#define HASH_P0 UINT64_C(0xa0761d6478bd642f)
#define HASH_P1 UINT64_C(0xe7037ed1a0b428db)
#define HASH_P2 UINT64_C(0x8ebc6af09c88c6e3)

static inline uint64_t hash_mix(uint64_t a, uint64_t b)
{
    u128 r = (u128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t hash_bytes(const unsigned char *p, size_t len, uint64_t h, uint64_t key)
{
    uint64_t a, b;
    h ^= len * HASH_P2;
    while (len > 16) {
        h = hash_mix(load64(p) ^ key, load64(p + 8) ^ h);
        p += 16;
        len -= 16;
    }
    if (len >= 8) {
        a = load64(p);
        b = load64(p + len - 8);
    } else if (len >= 4) {
        a = load32(p);
        b = load32(p + len - 4);
    } else if (len > 0) {
        a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len >> 1] << 8) | p[len - 1];
        b = 0;
    } else {
        a = b = 0;
    }
    return hash_mix(a ^ key, b ^ h ^ HASH_P1);
}

static uint64_t series_hash(const struct series_index *idx, const struct label *labels, size_t n)
{
    uint64_t h = idx->seed ^ (n * HASH_P0);
    for (size_t i = 0; i < n; i++) {
        h = hash_bytes((const unsigned char *)labels[i].name, labels[i].name_len, h, idx->key);
        h = hash_bytes((const unsigned char *)labels[i].value, labels[i].value_len, h,
                       idx->key ^ HASH_P0);
    }
    return hash_mix(h ^ HASH_P1, idx->key ^ HASH_P2);
}

/* ---- open-addressing table (shared by shards and the schema table) ------- */

static int table_init(struct series_index *idx, struct table *t, size_t cap)
{
    t->slots = calloc(cap, sizeof *t->slots);
    if (!t->slots)
        return -1;
    mem_add(idx, cap * sizeof *t->slots);
    t->cap = cap;
    t->count = 0;
    return 0;
}

static void table_cleanup(struct series_index *idx, struct table *t)
{
    mem_free(idx, t->slots, t->cap * sizeof *t->slots);
    t->slots = NULL;
    t->cap = t->count = 0;
}

/* First empty slot on hash's probe sequence. The table is never full. */
static size_t table_free_slot(const struct table *t, uint64_t hash)
{
    size_t mask = t->cap - 1, i = hash & mask;
    while (t->slots[i].p)
        i = (i + 1) & mask;
    return i;
}

static int table_resize(struct series_index *idx, struct table *t, size_t cap)
{
    struct table nt;
    if (table_init(idx, &nt, cap) < 0)
        return -1;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].p)
            nt.slots[table_free_slot(&nt, t->slots[i].hash)] = t->slots[i];
    nt.count = t->count;
    table_cleanup(idx, t);
    *t = nt;
    return 0;
}

/* Make room for one more entry: load stays at most 3/4. */
static int table_reserve(struct series_index *idx, struct table *t)
{
    if ((t->count + 1) * 4 <= t->cap * 3)
        return 0;
    return table_resize(idx, t, t->cap * 2);
}

/* After removals: give memory back once the load is under 1/8, shrinking to
 * a load of at most 1/4 so that growth does not follow at once. A failed
 * allocation just keeps the bigger table. */
static void table_shrink(struct series_index *idx, struct table *t)
{
    if (t->cap <= TABLE_MIN_CAP || t->count * 8 >= t->cap)
        return;
    size_t cap = TABLE_MIN_CAP;
    while (cap < t->count * 4)
        cap *= 2;
    if (cap < t->cap)
        (void)table_resize(idx, t, cap);
}

/* Backward-shift deletion: pull later members of the probe run into the hole
 * so that lookups never need tombstones. */
static void table_remove_at(struct table *t, size_t i)
{
    size_t mask = t->cap - 1, j = i;
    t->slots[i].p = NULL;
    for (;;) {
        j = (j + 1) & mask;
        if (!t->slots[j].p)
            break;
        size_t home = t->slots[j].hash & mask;
        /* The entry at j may move to the hole at i unless its home lies
         * cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        t->slots[i] = t->slots[j];
        t->slots[j].p = NULL;
        i = j;
    }
    t->count--;
}

static void shard_publish(struct shard *sh)
{
    atomic_store_explicit(&sh->hint_slots, sh->t.slots, memory_order_relaxed);
    atomic_store_explicit(&sh->hint_mask, sh->t.cap - 1, memory_order_relaxed);
}

/* ---- schemas: interned label-name lists ---------------------------------- */

static uint64_t names_hash(const struct series_index *idx, const struct label *labels, size_t n)
{
    uint64_t h = idx->seed ^ HASH_P2 ^ (n * HASH_P0);
    for (size_t i = 0; i < n; i++)
        h = hash_bytes((const unsigned char *)labels[i].name, labels[i].name_len, h, idx->key);
    return hash_mix(h ^ HASH_P1, idx->key ^ HASH_P0);
}

static bool schema_equal(const struct schema *sc, const struct label *labels, size_t n)
{
    if (sc->n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (sc->names[i].len != labels[i].name_len ||
            !bytes_eq(sc->names[i].p, labels[i].name, labels[i].name_len))
            return false;
    return true;
}

/* Find or create the schema for labels' names and take a reference.
 * NULL when out of memory. */
static struct schema *schema_acquire(struct series_index *idx, const struct label *labels, size_t n)
{
    uint64_t h = names_hash(idx, labels, n);
    struct schema *sc = NULL;
    pthread_mutex_lock(&idx->schema_lock);
    struct table *t = &idx->schemas;
    size_t mask = t->cap - 1;
    for (size_t i = h & mask; t->slots[i].p; i = (i + 1) & mask) {
        struct schema *c = t->slots[i].p;
        if (t->slots[i].hash == h && schema_equal(c, labels, n)) {
            sc = c;
            goto found;
        }
    }
    if (table_reserve(idx, t) < 0)
        goto fail;
    size_t bytes = sizeof *sc + n * sizeof sc->names[0];
    for (size_t i = 0; i < n; i++)
        bytes += labels[i].name_len;
    sc = malloc(bytes);
    if (!sc)
        goto fail;
    mem_add(idx, bytes);
    sc->hash = h;
    sc->refs = 0;
    sc->n = (uint32_t)n;
    char *p = (char *)&sc->names[n];
    for (size_t i = 0; i < n; i++) {
        memcpy(p, labels[i].name, labels[i].name_len);
        sc->names[i].p = p;
        sc->names[i].len = labels[i].name_len;
        p += labels[i].name_len;
    }
    size_t slot = table_free_slot(t, h);
    t->slots[slot].hash = h;
    t->slots[slot].p = sc;
    t->count++;
found:
    sc->refs++;
    pthread_mutex_unlock(&idx->schema_lock);
    return sc;
fail:
    pthread_mutex_unlock(&idx->schema_lock);
    return NULL;
}

static void schema_release(struct series_index *idx, const struct schema *csc)
{
    pthread_mutex_lock(&idx->schema_lock);
    struct schema *sc = (struct schema *)csc;
    if (--sc->refs == 0) {
        struct table *t = &idx->schemas;
        size_t mask = t->cap - 1, i = sc->hash & mask;
        while (t->slots[i].p != sc)
            i = (i + 1) & mask;
        table_remove_at(t, i);
        size_t bytes = sizeof *sc + sc->n * sizeof sc->names[0];
        for (uint32_t k = 0; k < sc->n; k++)
            bytes += sc->names[k].len;
        mem_free(idx, sc, bytes);
        table_shrink(idx, t);
    }
    pthread_mutex_unlock(&idx->schema_lock);
}

/* ---- series entries ------------------------------------------------------ */

/* The hot comparison: values first (they differ between series of one
 * family), then names against the shared, cache-hot schema. */
static inline bool series_equal(const struct series *s, const struct label *labels, size_t n)
{
    const struct schema *sc = s->schema;
    if (sc->n != n)
        return false;
    const unsigned char *p = s->values;
    for (size_t i = 0; i < n; i++) {
        uint32_t len = *p < 0x80 ? *p++ : varint_get(&p);
        if (len != labels[i].value_len || !bytes_eq(p, labels[i].value, len))
            return false;
        p += len;
    }
    for (size_t i = 0; i < n; i++)
        if (sc->names[i].len != labels[i].name_len ||
            !bytes_eq(sc->names[i].p, labels[i].name, labels[i].name_len))
            return false;
    return true;
}

static struct series *series_alloc(struct series_index *idx, const struct label *labels, size_t n,
                                   int64_t now_ms)
{
    size_t vbytes = 0;
    for (size_t i = 0; i < n; i++)
        vbytes += varint_len(labels[i].value_len) + labels[i].value_len;
    struct series *s = malloc(offsetof(struct series, values) + vbytes);
    if (!s)
        return NULL;
    s->schema = schema_acquire(idx, labels, n);
    if (!s->schema) {
        free(s);
        return NULL;
    }
    mem_add(idx, offsetof(struct series, values) + vbytes);
    s->model = NULL;
    s->last_t = 0;
    s->last_bits = 0;
    s->last_seen_ms = now_ms;
    s->nsamples = 0;
    s->rule_gen = 0;
    s->rule = -1;
    s->flags = 0;
    unsigned char *p = s->values;
    for (size_t i = 0; i < n; i++) {
        p = varint_put(p, labels[i].value_len);
        memcpy(p, labels[i].value, labels[i].value_len);
        p += labels[i].value_len;
    }
    return s;
}

static void model_drop(struct series_index *idx, struct series *s)
{
    if (s->model && idx->hooks)
        idx->hooks->destroy(idx->hooks->ctx, s->model);
    s->model = NULL;
}

static void slot_release(struct series_index *idx, struct series *s)
{
    if (s->flags & SERIES_F_MODELLED) {
        atomic_fetch_sub_explicit(&idx->modelled, 1, memory_order_relaxed);
        s->flags &= (uint8_t)~SERIES_F_MODELLED;
    }
}

/* Bytes of the entry's allocation, as requested in series_alloc(). */
static size_t series_bytes(const struct series *s)
{
    const unsigned char *p = s->values;
    for (uint32_t i = 0; i < s->schema->n; i++)
        p += varint_get(&p);
    return offsetof(struct series, values) + (size_t)(p - s->values);
}

/* Free an entry already removed from its table (shard lock held). */
static void series_free(struct series_index *idx, struct series *s)
{
    model_drop(idx, s);
    slot_release(idx, s);
    size_t bytes = series_bytes(s);
    schema_release(idx, s->schema);
    mem_free(idx, s, bytes);
    atomic_fetch_sub_explicit(&idx->active, 1, memory_order_relaxed);
}

/* Take one of the max_series model slots; the cap is exact under races. */
static bool cap_take(_Atomic size_t *count, size_t max)
{
    size_t cur = atomic_load_explicit(count, memory_order_relaxed);
    do {
        if (cur >= max)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(count, &cur, cur + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

static void model_slot_try(struct series_index *idx, struct series *s,
                           struct series_ingest_stats *st)
{
    size_t max = atomic_load_explicit(&idx->max_modelled, memory_order_relaxed);
    if (cap_take(&idx->modelled, max)) {
        s->flags = (uint8_t)((s->flags | SERIES_F_MODELLED) & ~SERIES_F_DENIED);
        return;
    }
    if (!(s->flags & SERIES_F_DENIED)) {
        s->flags |= SERIES_F_DENIED;
        st->unmodelled_series_limit++;
        log_warn_ratelimited("series matches a rule but is not modelled", "limit", "max_series");
    }
}

/* (Re)decide which rule models s, under the shard's current rules. Runs the
 * selectors: once per series per config generation. */
static void rule_decide(struct series_index *idx, const struct shard *sh, struct series *s,
                        const struct label *labels, size_t n, struct series_ingest_stats *st)
{
    const struct config_rule *r = sh->cfg ? config_match_rule(sh->cfg, labels, n) : NULL;
    if (r && idx->hooks && idx->hooks->accept && !idx->hooks->accept(idx->hooks->ctx, labels, n))
        r = NULL;
    int32_t rule = r ? (int32_t)(r - sh->cfg->rules) : -1;
    /* State made under the old config is kept only when the model owner
     * says the new rule has the same parameters (a reload must not forget
     * what was learned). */
    if (s->model && (rule < 0 || !idx->hooks->rebind(idx->hooks->ctx, s->model, sh->cfg, rule)))
        model_drop(idx, s);
    if (rule < 0)
        slot_release(idx, s);
    s->flags &= (uint8_t)~SERIES_F_DENIED;
    s->rule = rule;
    s->rule_gen = sh->rules_gen;
    if (rule >= 0 && !(s->flags & SERIES_F_MODELLED))
        model_slot_try(idx, s, st);
}

static void ingest_samples(struct series_index *idx, const struct shard *sh, struct series *s,
                           const struct label *labels, size_t n, const struct sample *smp,
                           size_t ns, struct series_ingest_stats *st)
{
    for (size_t k = 0; k < ns; k++) {
        uint64_t bits;
        memcpy(&bits, &smp[k].v, sizeof bits);
        int64_t t = smp[k].t;
        if (s->nsamples > 0 && t <= s->last_t) {
            if (t < s->last_t)
                st->out_of_order++;
            else if (bits == s->last_bits)
                st->duplicates++;
            else
                st->duplicate_conflicts++;
            continue;
        }
        s->last_t = t;
        s->last_bits = bits;
        s->nsamples++;
        st->accepted++;
        if (sample_bits_are_stale(bits)) {
            s->flags |= SERIES_F_STALE;
            st->stale++;
        } else {
            s->flags &= (uint8_t)~SERIES_F_STALE;
        }
        if (s->flags & SERIES_F_MODELLED) {
            st->modelled_samples++;
            const struct series_model_hooks *h = idx->hooks;
            if (!h)
                continue;
            if (!s->model)
                s->model = h->create(h->ctx, sh->cfg, s->rule, labels, n);
            if (s->model)
                h->observe(h->ctx, s->model, labels, n, &smp[k]);
        }
    }
}

/* ---- public API ---------------------------------------------------------- */

void series_index_opts_default(struct series_index_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->max_active_series = LIMIT_MAX_ACTIVE_SERIES;
    opts->max_modelled_series = LIMIT_MAX_SERIES;
    opts->idle_ttl_ms = LIMIT_SERIES_IDLE_TTL_MS;
    opts->nshards = SERIES_DEFAULT_SHARDS;
}

void series_index_opts_from_config(struct series_index_opts *opts, const struct config *cfg)
{
    opts->max_active_series = (size_t)cfg->limits.max_active_series;
    opts->max_modelled_series = (size_t)cfg->limits.max_series;
    opts->idle_ttl_ms = cfg->limits.series_idle_ttl_ms;
}

struct series_index *series_index_create(const struct series_index_opts *opts)
{
    unsigned nshards = opts->nshards ? opts->nshards : SERIES_DEFAULT_SHARDS;
    if (nshards > SERIES_MAX_SHARDS || (nshards & (nshards - 1)) != 0)
        return NULL;
    struct series_index *idx = calloc(1, sizeof *idx);
    if (!idx)
        return NULL;
    mem_add(idx, sizeof *idx);
    idx->nshards = nshards;
    idx->hash = opts->hash;
    if (getrandom(&idx->seed, sizeof idx->seed, GRND_NONBLOCK) != sizeof idx->seed ||
        getrandom(&idx->key, sizeof idx->key, GRND_NONBLOCK) != sizeof idx->key) {
        /* No entropy yet (early boot): still differs per process and run. */
        idx->seed = (uint64_t)clock_mono_ns() ^ (uint64_t)(uintptr_t)idx;
        idx->key = hash_mix(idx->seed ^ HASH_P1, (uint64_t)getpid() ^ HASH_P2);
    }
    idx->hooks = opts->hooks;
    series_index_set_limits(idx, opts);
    pthread_mutex_init(&idx->rules_lock, NULL);
    pthread_mutex_init(&idx->schema_lock, NULL);
    idx->shards = aligned_alloc(_Alignof(struct shard), nshards * sizeof *idx->shards);
    if (!idx->shards)
        goto fail;
    mem_add(idx, nshards * sizeof *idx->shards);
    memset(idx->shards, 0, nshards * sizeof *idx->shards);
    for (unsigned i = 0; i < nshards; i++)
        pthread_mutex_init(&idx->shards[i].lock, NULL);
    if (table_init(idx, &idx->schemas, TABLE_MIN_CAP) < 0)
        goto fail;
    for (unsigned i = 0; i < nshards; i++) {
        if (table_init(idx, &idx->shards[i].t, TABLE_MIN_CAP) < 0)
            goto fail;
        shard_publish(&idx->shards[i]);
    }
    return idx;
fail:
    series_index_destroy(idx);
    return NULL;
}

void series_index_destroy(struct series_index *idx)
{
    if (!idx)
        return;
    for (unsigned i = 0; idx->shards && i < idx->nshards; i++) {
        struct shard *sh = &idx->shards[i];
        for (size_t k = 0; k < sh->t.cap; k++)
            if (sh->t.slots[k].p)
                series_free(idx, sh->t.slots[k].p);
        table_cleanup(idx, &sh->t);
        pthread_mutex_destroy(&sh->lock);
    }
    free(idx->shards);
    table_cleanup(idx, &idx->schemas);
    pthread_mutex_destroy(&idx->schema_lock);
    pthread_mutex_destroy(&idx->rules_lock);
    free(idx);
}

void series_index_set_limits(struct series_index *idx, const struct series_index_opts *opts)
{
    atomic_store(&idx->max_active, opts->max_active_series);
    atomic_store(&idx->max_modelled, opts->max_modelled_series);
    atomic_store(&idx->idle_ttl_ms, opts->idle_ttl_ms);
}

void series_index_set_rules(struct series_index *idx, const struct config *cfg)
{
    pthread_mutex_lock(&idx->rules_lock);
    uint32_t gen = ++idx->rules_gen;
    /* Readers load cfg under their shard lock, so once every shard has been
     * switched under its lock nobody holds the old pointer any more. */
    for (unsigned i = 0; i < idx->nshards; i++) {
        struct shard *sh = &idx->shards[i];
        pthread_mutex_lock(&sh->lock);
        sh->cfg = cfg;
        sh->rules_gen = gen;
        pthread_mutex_unlock(&sh->lock);
    }
    pthread_mutex_unlock(&idx->rules_lock);
}

/* Copy labels without the empty-valued ones into out (STACK_LABELS long) or
 * a heap array (*heap, freed by the caller). Returns the array, NULL when out
 * of memory. */
static const struct label *labels_without_empty(const struct label *labels, size_t *n,
                                                struct label *out, struct label **heap)
{
    struct label *dst = out;
    if (*n > STACK_LABELS) {
        dst = *heap = malloc(*n * sizeof *dst);
        if (!dst)
            return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (labels[i].value_len > 0)
            dst[k++] = labels[i];
    *n = k;
    return dst;
}

/* Insert a new series at slot `i` of sh (lock held, lookup just missed).
 * Returns the entry, NULL with *refused when over max_active_series, NULL
 * without when out of memory. */
static struct series *series_insert(struct series_index *idx, struct shard *sh, uint64_t hash,
                                    size_t i, const struct label *labels, size_t n, int64_t now_ms,
                                    bool *refused)
{
    *refused = false;
    if (!cap_take(&idx->active, atomic_load_explicit(&idx->max_active, memory_order_relaxed))) {
        *refused = true;
        return NULL;
    }
    size_t cap = sh->t.cap;
    if (table_reserve(idx, &sh->t) < 0)
        goto fail;
    if (sh->t.cap != cap) {
        shard_publish(sh);
        i = table_free_slot(&sh->t, hash);
    }
    struct series *s = series_alloc(idx, labels, n, now_ms);
    if (!s)
        goto fail;
    sh->t.slots[i].hash = hash;
    sh->t.slots[i].p = s;
    sh->t.count++;
    return s;
fail:
    atomic_fetch_sub_explicit(&idx->active, 1, memory_order_relaxed);
    return NULL;
}

/* The entry for labels in t, or NULL with *pos at the free slot where it
 * would go. Shard lock held. */
static inline struct series *probe(const struct table *t, uint64_t hash, const struct label *labels,
                                   size_t n, size_t *pos)
{
    size_t mask = t->cap - 1, i = hash & mask;
    for (; t->slots[i].p; i = (i + 1) & mask)
        if (t->slots[i].hash == hash && series_equal(t->slots[i].p, labels, n))
            return t->slots[i].p;
    *pos = i;
    return NULL;
}

static inline uint64_t hash_of(const struct series_index *idx, const struct label *labels, size_t n)
{
    return idx->hash ? idx->hash(labels, n) : series_hash(idx, labels, n);
}

static inline struct shard *shard_of(const struct series_index *idx, uint64_t hash)
{
    return &idx->shards[(hash >> 48) & (idx->nshards - 1)];
}

/* Look up or insert one series whose labels (non-empty, no empty value)
 * hash to `hash`, and account its samples. */
static int ingest_hashed(struct series_index *idx, uint64_t hash, const struct label *labels,
                         size_t n, const struct sample *samples, size_t ns, int64_t now_ms,
                         struct series_ingest_stats *stats)
{
    struct shard *sh = shard_of(idx, hash);
    size_t pos = 0;
    pthread_mutex_lock(&sh->lock);
    struct series *s = probe(&sh->t, hash, labels, n, &pos);
    if (!s) {
        bool refused;
        s = series_insert(idx, sh, hash, pos, labels, n, now_ms, &refused);
        if (!s) {
            pthread_mutex_unlock(&sh->lock);
            if (!refused)
                return -1;
            stats->samples += ns;
            stats->dropped_series_limit++;
            stats->dropped_samples_limit += ns; /* the caller logs: it sees the request */
            return 0;
        }
        stats->new_series++;
    }
    s->last_seen_ms = now_ms;
    if (s->rule_gen != sh->rules_gen)
        rule_decide(idx, sh, s, labels, n, stats);
    else if (s->rule >= 0 && !(s->flags & SERIES_F_MODELLED))
        model_slot_try(idx, s, stats);
    stats->samples += ns;
    ingest_samples(idx, sh, s, labels, n, samples, ns, stats);
    pthread_mutex_unlock(&sh->lock);
    return 0;
}

static inline bool needs_filtering(const struct label *labels, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (labels[i].value_len == 0)
            return true;
    return n == 0;
}

int series_ingest(struct series_index *idx, const struct label *labels, size_t n,
                  const struct sample *samples, size_t ns, int64_t now_ms,
                  struct series_ingest_stats *stats)
{
    struct label stack[STACK_LABELS];
    struct label *heap = NULL;
    int rc = 0;
    if (needs_filtering(labels, n)) {
        labels = labels_without_empty(labels, &n, stack, &heap);
        if (!labels)
            return -1;
    }
    if (n == 0) {
        stats->samples += ns;
        stats->dropped_invalid += ns;
    } else {
        rc = ingest_hashed(idx, hash_of(idx, labels, n), labels, n, samples, ns, now_ms, stats);
    }
    free(heap);
    return rc;
}

/*
 * Batches hide memory latency: with 100k+ series the slot and the entry of a
 * series are each a cache miss (100-200 ns apiece here), which one lookup
 * can only wait for. A window of series goes through three passes: hash and
 * prefetch the slot (through the shard's lock-free hint), then under the
 * lock find the entry and prefetch it, then the real ingest, which finds
 * both in cache. Two lock round trips cost far less than the misses.
 */
#define BATCH_WINDOW 8   /* series in flight; 8-16 measured best, 32 saturates */
#define PREFETCH_MAX 256 /* entry bytes prefetched; the rest streams in */

static void prefetch_slot(const struct shard *sh, uint64_t hash)
{
    uintptr_t slots = (uintptr_t)atomic_load_explicit(&sh->hint_slots, memory_order_relaxed);
    size_t mask = atomic_load_explicit(&sh->hint_mask, memory_order_relaxed);
    /* The hint may be stale: prefetching a stale address is harmless. */
    __builtin_prefetch((const void *)(slots + (hash & mask) * sizeof(struct slot)));
}

static void prefetch_entry(struct shard *sh, uint64_t hash, const struct label *labels, size_t n)
{
    size_t bytes = offsetof(struct series, values);
    for (size_t i = 0; i < n; i++)
        bytes += labels[i].value_len + 1;
    if (bytes > PREFETCH_MAX)
        bytes = PREFETCH_MAX;
    /* Prefetch every entry on the probe run with this hash, without reading
     * it (comparing labels here would wait for the very miss we are hiding).
     * Only addresses are used after the unlock. */
    pthread_mutex_lock(&sh->lock);
    const struct table *t = &sh->t;
    size_t mask = t->cap - 1;
    for (size_t i = hash & mask; t->slots[i].p; i = (i + 1) & mask)
        if (t->slots[i].hash == hash)
            for (size_t off = 0; off < bytes; off += 64)
                __builtin_prefetch((const char *)t->slots[i].p + off);
    pthread_mutex_unlock(&sh->lock);
}

int series_ingest_batch(struct series_index *idx, const struct series_input *in, size_t count,
                        int64_t now_ms, struct series_ingest_stats *stats)
{
    int rc = 0;
    for (size_t base = 0; base < count; base += BATCH_WINDOW) {
        size_t m = count - base < BATCH_WINDOW ? count - base : BATCH_WINDOW;
        const struct series_input *w = in + base;
        uint64_t hash[BATCH_WINDOW];
        bool slow[BATCH_WINDOW];
        for (size_t j = 0; j < m; j++) {
            slow[j] = needs_filtering(w[j].labels, w[j].n);
            if (slow[j])
                continue;
            hash[j] = hash_of(idx, w[j].labels, w[j].n);
            prefetch_slot(shard_of(idx, hash[j]), hash[j]);
        }
        if (m > 1)
            for (size_t j = 0; j < m; j++)
                if (!slow[j])
                    prefetch_entry(shard_of(idx, hash[j]), hash[j], w[j].labels, w[j].n);
        for (size_t j = 0; j < m; j++) {
            int r = slow[j] ? series_ingest(idx, w[j].labels, w[j].n, w[j].samples, w[j].ns, now_ms,
                                            stats)
                            : ingest_hashed(idx, hash[j], w[j].labels, w[j].n, w[j].samples,
                                            w[j].ns, now_ms, stats);
            if (r < 0)
                rc = -1;
        }
    }
    return rc;
}

size_t series_index_evict_idle(struct series_index *idx, int64_t now_ms)
{
    int64_t ttl = atomic_load(&idx->idle_ttl_ms);
    if (ttl <= 0 || now_ms < INT64_MIN + ttl)
        return 0;
    int64_t cutoff = now_ms - ttl; /* evict when last_seen_ms <= cutoff */
    size_t evicted = 0;
    for (unsigned k = 0; k < idx->nshards; k++) {
        struct shard *sh = &idx->shards[k];
        pthread_mutex_lock(&sh->lock);
        struct table *t = &sh->t;
        /* After a removal the slot may hold an entry shifted back from
         * further on, so look at it again; entries shifted across the wrap
         * are looked at twice, never skipped. */
        size_t i = 0;
        while (i < t->cap) {
            struct series *s = t->slots[i].p;
            if (s && s->last_seen_ms <= cutoff) {
                table_remove_at(t, i);
                series_free(idx, s);
                evicted++;
                continue;
            }
            i++;
        }
        table_shrink(idx, t);
        shard_publish(sh);
        pthread_mutex_unlock(&sh->lock);
    }
    return evicted;
}

size_t series_index_count(const struct series_index *idx)
{
    return atomic_load_explicit(&idx->active, memory_order_relaxed);
}

size_t series_index_modelled(const struct series_index *idx)
{
    return atomic_load_explicit(&idx->modelled, memory_order_relaxed);
}

size_t series_index_memory_bytes(const struct series_index *idx)
{
    return atomic_load_explicit(&idx->memory, memory_order_relaxed);
}

/* Rebuild s's labels into out (names point into the schema, values into the
 * entry). */
static void series_labels(const struct series *s, struct label *out)
{
    const struct schema *sc = s->schema;
    const unsigned char *p = s->values;
    for (uint32_t i = 0; i < sc->n; i++) {
        out[i].name = sc->names[i].p;
        out[i].name_len = sc->names[i].len;
        out[i].value_len = varint_get(&p);
        out[i].value = (const char *)p;
        p += out[i].value_len;
    }
}

int series_index_visit(struct series_index *idx, const struct selector *sel, series_visit_fn fn,
                       void *ctx)
{
    struct label stack[STACK_LABELS];
    struct label *buf = stack;
    size_t bufcap = STACK_LABELS;
    int rc = 0;
    for (unsigned k = 0; k < idx->nshards && rc == 0; k++) {
        struct shard *sh = &idx->shards[k];
        pthread_mutex_lock(&sh->lock);
        for (size_t i = 0; i < sh->t.cap && rc == 0; i++) {
            const struct series *s = sh->t.slots[i].p;
            if (!s)
                continue;
            size_t n = s->schema->n;
            if (n > bufcap) {
                struct label *nb = malloc(n * sizeof *nb);
                if (!nb) {
                    rc = -1;
                    break;
                }
                if (buf != stack)
                    free(buf);
                buf = nb;
                bufcap = n;
            }
            series_labels(s, buf);
            if (sel && !selector_match(sel, buf, n))
                continue;
            struct series_info info;
            info.last_t = s->last_t;
            memcpy(&info.last_v, &s->last_bits, sizeof info.last_v);
            info.stale = (s->flags & SERIES_F_STALE) != 0;
            info.rule = s->rule;
            info.modelled = (s->flags & SERIES_F_MODELLED) != 0;
            info.samples = s->nsamples;
            info.last_seen_ms = s->last_seen_ms;
            info.model = s->model;
            rc = fn(ctx, buf, n, &info);
        }
        pthread_mutex_unlock(&sh->lock);
    }
    if (buf != stack)
        free(buf);
    return rc;
}

int series_index_visit_models(struct series_index *idx, const struct selector *sel,
                              series_model_visit_fn fn, void *ctx)
{
    struct label stack[STACK_LABELS];
    struct label *buf = stack;
    size_t bufcap = STACK_LABELS;
    int rc = 0;
    for (unsigned k = 0; k < idx->nshards && rc == 0; k++) {
        struct shard *sh = &idx->shards[k];
        pthread_mutex_lock(&sh->lock);
        for (size_t i = 0; i < sh->t.cap && rc == 0; i++) {
            struct series *s = sh->t.slots[i].p;
            if (!s || !s->model)
                continue;
            size_t n = s->schema->n;
            if (n > bufcap) {
                struct label *nb = malloc(n * sizeof *nb);
                if (!nb) {
                    rc = -1;
                    break;
                }
                if (buf != stack)
                    free(buf);
                buf = nb;
                bufcap = n;
            }
            series_labels(s, buf);
            if (sel && !selector_match(sel, buf, n))
                continue;
            rc = fn(ctx, buf, n, s->model);
        }
        pthread_mutex_unlock(&sh->lock);
    }
    if (buf != stack)
        free(buf);
    return rc;
}

int series_index_with_model(struct series_index *idx, const struct label *labels, size_t n,
                            series_model_visit_fn fn, void *ctx)
{
    if (n == 0)
        return 1;
    uint64_t hash = hash_of(idx, labels, n);
    struct shard *sh = shard_of(idx, hash);
    size_t pos;
    int rc = 1;
    pthread_mutex_lock(&sh->lock);
    struct series *s = probe(&sh->t, hash, labels, n, &pos);
    if (s && s->model)
        rc = fn(ctx, labels, n, s->model);
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

int series_index_restore(struct series_index *idx, const struct label *labels, size_t n,
                         int64_t last_t, void *model, int64_t now_ms)
{
    const struct series_model_hooks *h = idx->hooks;
    struct series_ingest_stats st = {0};
    if (n == 0 || !h) {
        if (h && model)
            h->destroy(h->ctx, model);
        return 0;
    }
    uint64_t hash = hash_of(idx, labels, n);
    struct shard *sh = shard_of(idx, hash);
    size_t pos = 0;
    int rc = 0;
    pthread_mutex_lock(&sh->lock);
    struct series *s = probe(&sh->t, hash, labels, n, &pos);
    if (!s) {
        bool refused;
        s = series_insert(idx, sh, hash, pos, labels, n, now_ms, &refused);
        if (!s) {
            pthread_mutex_unlock(&sh->lock);
            if (model)
                h->destroy(h->ctx, model);
            return refused ? 0 : -1;
        }
        s->last_t = last_t;
        s->nsamples = 1; /* so older samples count as out of order, as before */
    }
    rule_decide(idx, sh, s, labels, n, &st);
    if (model && !s->model && (s->flags & SERIES_F_MODELLED) &&
        h->rebind(h->ctx, model, sh->cfg, s->rule)) {
        s->model = model;
        model = NULL;
        rc = 1;
    }
    pthread_mutex_unlock(&sh->lock);
    if (model)
        h->destroy(h->ctx, model);
    return rc;
}

void series_index_barrier(struct series_index *idx)
{
    for (unsigned k = 0; k < idx->nshards; k++) {
        pthread_mutex_lock(&idx->shards[k].lock);
        pthread_mutex_unlock(&idx->shards[k].lock);
    }
}
