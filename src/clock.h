/*
 * clock.h — wall and monotonic clocks in the units the project uses.
 * Wall time is for sample timestamps (ms since the epoch); monotonic time is
 * for durations, periods and deadlines. Thread-safe.
 */
#ifndef PROMCAST_CLOCK_H
#define PROMCAST_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t clock_mono_ms(void)
{
    return clock_mono_ns() / 1000000;
}

#endif
