/*
 * A minimal unit-test harness: TEST(name) defines a case, CHECK* record
 * failures with file:line, and test_main() runs every case and prints the
 * closing line "N passed, N failed". Exit status is non-zero on failure.
 */
#ifndef LOFT_TEST_H
#define LOFT_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void test_fn(void);
struct test_case { const char *name; test_fn *fn; };

extern int test_failures_in_case;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__,     \
              #cond);                                                      \
      test_failures_in_case++;                                             \
    }                                                                      \
  } while (0)

#define CHECK_INT(a, b)                                                    \
  do {                                                                     \
    long long a_ = (long long)(a), b_ = (long long)(b);                    \
    if (a_ != b_) {                                                        \
      fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__,      \
              __LINE__, #a, a_, b_);                                       \
      test_failures_in_case++;                                             \
    }                                                                      \
  } while (0)

#define CHECK_STR(a, b)                                                    \
  do {                                                                     \
    const char *a_ = (a), *b_ = (b);                                       \
    if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                 \
      fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__,  \
              __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)");       \
      test_failures_in_case++;                                             \
    }                                                                      \
  } while (0)

#define CHECK_MEM(a, alen, b, blen)                                        \
  do {                                                                     \
    size_t al_ = (alen), bl_ = (blen);                                     \
    if (al_ != bl_ || memcmp((a), (b), al_) != 0) {                        \
      fprintf(stderr, "%s:%d: %s (%zu bytes) differs from %s (%zu)\n",    \
              __FILE__, __LINE__, #a, al_, #b, bl_);                       \
      test_failures_in_case++;                                             \
    }                                                                      \
  } while (0)

int test_failures_in_case;

static inline int test_main(const struct test_case *cases)
{
	int passed = 0, failed = 0;
	const char *only = getenv("TEST_ONLY");
	for (const struct test_case *t = cases; t->name != NULL; t++) {
		if (only != NULL && strcmp(only, t->name) != 0)
			continue;
		test_failures_in_case = 0;
		t->fn();
		if (test_failures_in_case == 0) {
			passed++;
		} else {
			failed++;
			fprintf(stderr, "FAIL %s\n", t->name);
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}

#endif
