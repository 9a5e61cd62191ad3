/*
 * The metrics registry (metrics.h): families in registration order, each
 * with its series; a hash over "name{labels}" finds a series for the
 * one-call forms. Values are atomics, so updating never takes the lock.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"

enum metrics_type { M_COUNTER, M_GAUGE, M_HISTOGRAM };

struct metrics_family;

struct metrics_series {
	struct metrics_series *next;       /* in the family */
	struct metrics_series *hash_next;
	struct metrics_family *family;
	char *labels;                      /* "" when none */
	_Atomic uint64_t count;            /* counter; histogram count */
	_Atomic int64_t gauge;
	_Atomic uint64_t sum_nano;         /* histogram sum x 1e9 */
	double *bounds;
	size_t nbounds;
	_Atomic uint64_t *buckets;         /* nbounds (non-cumulative) */
};

struct metrics_family {
	struct metrics_family *next;
	char *name;
	char *help;
	enum metrics_type type;
	struct metrics_series *series, *last;
};

#define HASH_SIZE 512

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_family *families, *families_last;
static struct metrics_series *table[HASH_SIZE];

const double metrics_latency_bounds[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10,
};
const size_t metrics_latency_bound_count =
	sizeof(metrics_latency_bounds) / sizeof(metrics_latency_bounds[0]);

static unsigned hash(const char *name, const char *labels)
{
	unsigned h = 2166136261u;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ '{') * 16777619u;
	for (const char *p = labels; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % HASH_SIZE;
}

static struct metrics_family *family_get(const char *name, const char *help,
					 enum metrics_type type)
{
	for (struct metrics_family *f = families; f != NULL; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	struct metrics_family *f = xcalloc(1, sizeof(*f));
	f->name = xstrdup(name);
	f->help = xstrdup(help != NULL ? help : "");
	f->type = type;
	if (families_last != NULL)
		families_last->next = f;
	else
		families = f;
	families_last = f;
	return f;
}

static struct metrics_series *series_get(const char *name, const char *help,
					 const char *labels,
					 enum metrics_type type,
					 const double *bounds, size_t nbounds)
{
	if (labels == NULL)
		labels = "";
	unsigned h = hash(name, labels);
	pthread_mutex_lock(&mu);
	struct metrics_series *s;
	for (s = table[h]; s != NULL; s = s->hash_next)
		if (strcmp(s->family->name, name) == 0 &&
		    strcmp(s->labels, labels) == 0)
			goto out;
	struct metrics_family *f = family_get(name, help, type);
	s = xcalloc(1, sizeof(*s));
	s->family = f;
	s->labels = xstrdup(labels);
	if (f->type == M_HISTOGRAM) {
		if (bounds == NULL || nbounds == 0) {
			bounds = metrics_latency_bounds;
			nbounds = metrics_latency_bound_count;
		}
		s->bounds = xmalloc(nbounds * sizeof(*s->bounds));
		memcpy(s->bounds, bounds, nbounds * sizeof(*s->bounds));
		s->nbounds = nbounds;
		s->buckets = xcalloc(nbounds, sizeof(*s->buckets));
	}
	if (f->last != NULL)
		f->last->next = s;
	else
		f->series = s;
	f->last = s;
	s->hash_next = table[h];
	table[h] = s;
out:
	pthread_mutex_unlock(&mu);
	return s;
}

struct metrics_series *metrics_counter(const char *name, const char *help,
				       const char *labels)
{
	return series_get(name, help, labels, M_COUNTER, NULL, 0);
}

struct metrics_series *metrics_gauge(const char *name, const char *help,
				     const char *labels)
{
	return series_get(name, help, labels, M_GAUGE, NULL, 0);
}

struct metrics_series *metrics_histogram(const char *name, const char *help,
					 const char *labels,
					 const double *bounds, size_t count)
{
	return series_get(name, help, labels, M_HISTOGRAM, bounds, count);
}

void metrics_add(struct metrics_series *s, uint64_t n)
{
	if (s != NULL)
		atomic_fetch_add_explicit(&s->count, n, memory_order_relaxed);
}

void metrics_gauge_add(struct metrics_series *s, int64_t delta)
{
	if (s != NULL)
		atomic_fetch_add_explicit(&s->gauge, delta, memory_order_relaxed);
}

void metrics_gauge_set(struct metrics_series *s, int64_t value)
{
	if (s != NULL)
		atomic_store_explicit(&s->gauge, value, memory_order_relaxed);
}

void metrics_observe(struct metrics_series *s, double value)
{
	if (s == NULL || s->buckets == NULL || !(value >= 0))
		return;
	for (size_t i = 0; i < s->nbounds; i++) {
		if (value <= s->bounds[i]) {
			atomic_fetch_add_explicit(&s->buckets[i], 1,
						  memory_order_relaxed);
			break;
		}
	}
	atomic_fetch_add_explicit(&s->sum_nano, (uint64_t)(value * 1e9),
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

uint64_t metrics_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void metrics_observe_since(struct metrics_series *s, uint64_t start_ns)
{
	uint64_t now = metrics_now_ns();
	metrics_observe(s, now > start_ns ? (double)(now - start_ns) / 1e9 : 0);
}

void metrics_count(const char *name, const char *help, const char *labels)
{
	metrics_add(metrics_counter(name, help, labels), 1);
}

void metrics_label_escape(const char *value, char *out, size_t size)
{
	size_t o = 0;
	if (size == 0)
		return;
	for (const char *p = value; *p && o + 2 < size; p++) {
		if (*p == '\\' || *p == '"') {
			out[o++] = '\\';
			out[o++] = *p;
		} else if (*p == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

static void fmt_double(struct buf *out, double v)
{
	if (isinf(v))
		buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
	else
		buf_printf(out, "%.17g", v);
}

/* name{labels,extra} */
static void series_name(struct buf *out, const char *name, const char *suffix,
			const char *labels, const char *extra)
{
	buf_printf(out, "%s%s", name, suffix);
	bool l = labels[0] != '\0', e = extra != NULL && extra[0] != '\0';
	if (l || e)
		buf_printf(out, "{%s%s%s}", labels, l && e ? "," : "",
			   e ? extra : "");
	buf_append_char(out, ' ');
}

static void render_histogram(struct buf *out, const struct metrics_family *f,
			     struct metrics_series *s)
{
	uint64_t cum = 0;
	char le[64];
	for (size_t i = 0; i < s->nbounds; i++) {
		cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
		struct buf b;
		buf_init(&b, 0);
		fmt_double(&b, s->bounds[i]);
		snprintf(le, sizeof(le), "le=\"%s\"", b.data);
		buf_free(&b);
		series_name(out, f->name, "_bucket", s->labels, le);
		buf_printf(out, "%llu\n", (unsigned long long)cum);
	}
	uint64_t count = atomic_load_explicit(&s->count, memory_order_relaxed);
	series_name(out, f->name, "_bucket", s->labels, "le=\"+Inf\"");
	buf_printf(out, "%llu\n", (unsigned long long)(count > cum ? count : cum));
	series_name(out, f->name, "_sum", s->labels, NULL);
	fmt_double(out, (double)atomic_load_explicit(&s->sum_nano,
						     memory_order_relaxed) / 1e9);
	buf_append_char(out, '\n');
	series_name(out, f->name, "_count", s->labels, NULL);
	buf_printf(out, "%llu\n", (unsigned long long)(count > cum ? count : cum));
}

void metrics_render(struct buf *out)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	pthread_mutex_lock(&mu);
	for (struct metrics_family *f = families; f != NULL; f = f->next) {
		buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name,
			   f->help, f->name, types[f->type]);
		for (struct metrics_series *s = f->series; s; s = s->next) {
			if (f->type == M_HISTOGRAM) {
				render_histogram(out, f, s);
				continue;
			}
			series_name(out, f->name, "", s->labels, NULL);
			if (f->type == M_COUNTER)
				buf_printf(out, "%llu\n", (unsigned long long)
					   atomic_load(&s->count));
			else
				buf_printf(out, "%lld\n", (long long)
					   atomic_load(&s->gauge));
		}
	}
	pthread_mutex_unlock(&mu);
}
