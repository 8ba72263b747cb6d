/*
 * testlib.h — the few macros the unit tests share.
 *
 * CHECK(cond, fmt, ...) records a failure with the failing input described by
 * fmt and keeps going, so one run shows every failing case of a table.
 * test_main_end() prints "<file>: N checks, M failed" and returns the exit code.
 */
#ifndef PROMCAST_TESTLIB_H
#define PROMCAST_TESTLIB_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_checks;
static int test_failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond);                       \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* CHECK_NEAR(got, want, tol, what): `what` is a plain string naming the case. */
#define CHECK_NEAR(a, b, tol, what)                                                                \
    CHECK(fabs((double)(a) - (double)(b)) <= (tol), "%s: got %.17g want %.17g (tol %g)", (what),   \
          (double)(a), (double)(b), (double)(tol))

static inline int test_main_end(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}

#endif
