/*
 * Logging: one line per event to stderr (and syslog when enabled), with a
 * level and, when given, a session id. Never pass a password here.
 *
 *   log_info("imap", sid, "login user=%s", user);
 *   -> 2026-11-21T06:40:00Z info imap[3f2a]: login user=demo@example.test
 */
#ifndef LOFT_LOG_H
#define LOFT_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* Sets the lowest level written; default info. Thread-safe to call at start. */
void log_set_level(enum log_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 if unknown. */
int log_level_parse(const char *name, enum log_level *level_r);
/* Also writes to syslog(3) with the given ident (NULL turns it off). */
void log_set_syslog(const char *ident);

/* module: short name ("imap"); sid: session id or NULL. */
void log_msg(enum log_level level, const char *module, const char *sid,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define log_debug(m, s, ...) log_msg(LOG_LVL_DEBUG, m, s, __VA_ARGS__)
#define log_info(m, s, ...) log_msg(LOG_LVL_INFO, m, s, __VA_ARGS__)
#define log_warn(m, s, ...) log_msg(LOG_LVL_WARN, m, s, __VA_ARGS__)
#define log_error(m, s, ...) log_msg(LOG_LVL_ERROR, m, s, __VA_ARGS__)

/* Writes a fresh 8-hex-digit session id into buf (at least 9 bytes). */
void log_session_id(char *buf);

#endif
