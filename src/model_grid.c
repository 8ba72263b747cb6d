/*
 * model_grid.c — raw samples onto the step grid.
 *
 * Aggregates the samples of one series into steps of p->step_ms (boundaries
 * at multiples of step_ms since the epoch) with `last`, `mean` or `max`, and
 * applies the `rate` transform. A step closes when a sample of a later step
 * arrives, when a stale marker arrives, or when model_flush() says time has
 * moved past it. Steps without samples are never filled in: the caller sees
 * the jump in step index and treats it as a gap.
 *
 * Rate follows Prometheus: each pair of consecutive raw samples gives an
 * increase (the new value itself when the counter went down, i.e. was reset)
 * over the time between them; the pair belongs to the step of its later
 * sample. `mean` is the time-weighted rate over the step (sum of increases /
 * sum of seconds), `last` the rate of the newest pair, `max` the largest pair
 * rate. A rate is never negative.
 *
 * Deliberately not done here: any modelling, and filling of missing steps.
 * No library beyond libc.
 */
#include <math.h>
#include <string.h>

#include "model_internal.h"

void grid_init(struct model_grid *g, int64_t step_ms)
{
    memset(g, 0, sizeof *g);
    g->inv_step = 1.0 / (double)step_ms;
}

/* Hand out the open step if it has data; forget it either way. */
static int close_open(struct model_grid *g, const struct model_params *p, struct grid_step *out)
{
    int had = (g->flags & GRID_OPEN) && (g->flags & GRID_HAS_DATA);
    if (had) {
        out->t = g->open_t;
        switch (p->aggregation) {
        case MODEL_AGG_MEAN:
            if (p->transform == MODEL_TRANSFORM_RATE)
                out->value = g->agg_dt > 0 ? g->agg_sum / g->agg_dt : g->agg_last;
            else
                out->value = g->agg_sum / (double)g->count;
            break;
        case MODEL_AGG_MAX:
            out->value = g->agg_max;
            break;
        default:
            out->value = g->agg_last;
            break;
        }
        if (!(fabs(out->value) <= MODEL_VALUE_MAX))
            had = 0; /* an aggregate (a rate) can leave the range too */
    }
    if (g->flags & GRID_OPEN)
        g->flags |= GRID_CLOSED; /* open_t now names the last closed step */
    g->flags &= ~(unsigned)(GRID_OPEN | GRID_HAS_DATA);
    g->count = 0;
    return had;
}

/* Add one value (already transformed) to the open step. newest says whether
 * it is the newest sample so far (late samples inside the step do not become
 * `last`). */
static void add_value(struct model_grid *g, double x, double dt, double inc, int newest)
{
    if (!(g->flags & GRID_HAS_DATA)) {
        g->agg_last = x;
        g->agg_sum = 0;
        g->agg_max = x;
        g->agg_dt = 0;
        g->count = 0;
        g->flags |= GRID_HAS_DATA;
    }
    if (newest)
        g->agg_last = x;
    if (x > g->agg_max)
        g->agg_max = x;
    if (dt > 0) {
        g->agg_sum += inc;
        g->agg_dt += dt;
    } else {
        g->agg_sum += x;
    }
    g->count++;
}

int grid_feed(struct model_grid *g, const struct model_params *p, int64_t t, double v,
              struct grid_step *closed, unsigned *flags)
{
    int64_t step = p->step_ms;
    int rate = p->transform == MODEL_TRANSFORM_RATE;
    int n = 0;

    if (sample_is_stale(v)) {
        /* The series stopped: close what is open and forget the counter base
         * so the next sample starts afresh. */
        if ((g->flags & GRID_SEEN) && t < g->last_t) {
            *flags |= MODEL_F_LATE;
            return 0;
        }
        *flags |= MODEL_F_STALE;
        n = close_open(g, p, closed);
        g->flags &= ~(unsigned)GRID_HAS_BASE;
        g->flags |= GRID_PAUSED;
        if (t > g->last_t)
            g->last_t = t;
        return n;
    }
    if (!(fabs(v) <= MODEL_VALUE_MAX)) {
        /* NaN, Inf, or so large that squares of errors overflow */
        *flags |= MODEL_F_INVALID;
        return 0;
    }
    if (g->flags & GRID_SEEN) {
        if (t == g->last_t && !(g->flags & GRID_PAUSED)) {
            /* Prometheus keeps the first of two samples with one timestamp. */
            *flags |= MODEL_F_DUPLICATE;
            return 0;
        }
        if ((g->flags & GRID_OPEN) && t < g->open_t) {
            *flags |= MODEL_F_LATE;
            return 0;
        }
        if (!(g->flags & GRID_OPEN) && t < g->last_t) {
            *flags |= MODEL_F_LATE;
            return 0;
        }
    }

    int64_t rem;
    int64_t st = t - (model_floordiv(t, step, g->inv_step, &rem), rem);
    if (!(g->flags & GRID_OPEN) && (g->flags & GRID_CLOSED) && st <= g->open_t) {
        /* Its step was already closed (by a flush or a stale marker). */
        *flags |= MODEL_F_LATE;
        return 0;
    }
    if (g->flags & GRID_OPEN) {
        if (st > g->open_t) {
            if (st > g->open_t + step)
                *flags |= MODEL_F_GAP;
            n = close_open(g, p, closed);
        }
    }
    if (!(g->flags & GRID_OPEN)) {
        g->flags |= GRID_OPEN;
        g->open_t = st;
    }
    g->flags &= ~(unsigned)GRID_PAUSED;

    int newest = !(g->flags & GRID_SEEN) || t > g->last_t;
    if (rate) {
        if (!newest) {
            /* An out-of-order sample has no well-defined increase. */
            *flags |= MODEL_F_LATE;
            return n;
        }
        if (g->flags & GRID_HAS_BASE) {
            double dt = (double)(t - g->last_t) / 1000.0;
            double inc = v - g->last_raw;
            if (v < g->last_raw) {
                inc = v; /* counter reset: it restarted from zero */
                *flags |= MODEL_F_RESET;
            }
            if (inc < 0)
                inc = 0;
            add_value(g, inc / dt, dt, inc, 1);
        }
        g->last_raw = v;
        g->flags |= GRID_HAS_BASE;
    } else {
        add_value(g, v, 0, 0, newest);
    }
    if (newest)
        g->last_t = t;
    g->flags |= GRID_SEEN;
    return n;
}

int grid_flush(struct model_grid *g, const struct model_params *p, int64_t now,
               struct grid_step *closed)
{
    if (!(g->flags & GRID_OPEN) || now < g->open_t + p->step_ms)
        return 0;
    /* Keep the counter base: the next sample still continues the counter. */
    return close_open(g, p, closed);
}
