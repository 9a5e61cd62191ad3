/*
 * Logging to stderr and optionally syslog. A line is formatted in full
 * first and written with one write(2), so lines of concurrent threads do
 * not interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static _Atomic int min_level = LOG_LVL_INFO;
static _Atomic bool use_syslog;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
	min_level = level;
}

int log_level_parse(const char *name, enum log_level *level_r)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	if (strcmp(name, "warning") == 0) {
		*level_r = LOG_LVL_WARN;
		return 0;
	}
	return -1;
}

void log_set_syslog(const char *ident)
{
	if (ident != NULL) {
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
		use_syslog = true;
	} else {
		use_syslog = false;
	}
}

void log_msg(enum log_level level, const char *module, const char *sid,
	     const char *fmt, ...)
{
	if ((int)level < min_level)
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
	int prefix_start = n;
	if (sid != NULL)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%s %s[%s]: ",
			      level_names[level], module, sid);
	else
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%s %s: ",
			      level_names[level], module);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	/* Control characters from the network must not forge log lines. */
	for (int i = prefix_start; i < n; i++) {
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
	}
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
	if (use_syslog) {
		static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
		syslog(prio[level], "%.*s", n - 1 - prefix_start, line + prefix_start);
	}
}

void log_session_id(char *buf)
{
	uint32_t v;
	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	snprintf(buf, 9, "%08x", v);
}
