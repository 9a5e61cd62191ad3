/*
 * A growable byte buffer with a hard maximum: appends past the maximum fail
 * with -1 and leave the buffer as it was, never overrun. The data is always
 * followed by a NUL (not counted in len) for convenience with C APIs; the
 * contents may hold NULs of their own.
 */
#ifndef LOFT_BUF_H
#define LOFT_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;   /* 0: no limit beyond memory */
};

/* A slice: a view into bytes owned elsewhere, never NUL-terminated. */
struct slice {
	const char *ptr;
	size_t len;
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* 0 on success, -1 if the result would exceed max. */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_append_char(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Takes the data out (caller frees), leaving b empty. */
char *buf_steal(struct buf *b, size_t *len_r);

static inline struct slice slice_make(const char *p, size_t n)
{
	struct slice s = {p, n};
	return s;
}
bool slice_eq_ci(struct slice s, const char *lit);
bool slice_eq(struct slice s, const char *lit);

/* xmalloc family: abort on allocation failure, as the style asks. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
