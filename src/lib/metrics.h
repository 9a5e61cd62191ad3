/*
 * Metrics: counters, gauges and histograms any module updates cheaply
 * (one atomic operation once it holds its series) and the HTTP admin
 * listener renders at /metrics in the Prometheus text format (0.0.4).
 *
 *   static struct metrics_series *ok;
 *   ok = metrics_counter("loft_commands_total", "Commands answered.",
 *                        "proto=\"imap\",result=\"ok\"");
 *   metrics_add(ok, 1);
 *
 * or, where the labels vary, the one-call form (a hash lookup under a
 * lock): metrics_count("loft_commands_total", help, labels).
 *
 * A family (name) has one type and help text: the first registration
 * sets them. labels: Prometheus label pairs without braces, values
 * already escaped (use metrics_label_escape for untrusted text), or NULL.
 * Series live until exit. Thread-safe.
 */
#ifndef LOFT_METRICS_H
#define LOFT_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct metrics_series;

struct metrics_series *metrics_counter(const char *name, const char *help,
				       const char *labels);
struct metrics_series *metrics_gauge(const char *name, const char *help,
				     const char *labels);
/* bounds: the buckets' upper bounds in ascending order (seconds for
 * latencies); NULL/0 gives metrics_latency_bounds. */
struct metrics_series *metrics_histogram(const char *name, const char *help,
					 const char *labels,
					 const double *bounds, size_t count);
extern const double metrics_latency_bounds[];
extern const size_t metrics_latency_bound_count;

void metrics_add(struct metrics_series *s, uint64_t n);         /* counter */
void metrics_gauge_add(struct metrics_series *s, int64_t delta);
void metrics_gauge_set(struct metrics_series *s, int64_t value);
void metrics_observe(struct metrics_series *s, double value);   /* histogram */
/* Observes the time since start (CLOCK_MONOTONIC, from metrics_now). */
uint64_t metrics_now_ns(void);
void metrics_observe_since(struct metrics_series *s, uint64_t start_ns);

/* The one-call forms: counter += 1 / histogram observation. */
void metrics_count(const char *name, const char *help, const char *labels);

/* A label value made safe ('\\', '"' and newlines escaped; at most
 * size-1 bytes). */
void metrics_label_escape(const char *value, char *out, size_t size);

/* Appends every family in the text format. */
void metrics_render(struct buf *out);

#endif
