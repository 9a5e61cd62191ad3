/*
 * Retention (DESIGN.md "POP3 policies"): applies each account's policy
 * (pop3_retention_days with its pop3_delete, trash_retention_days,
 * junk_retention_days) through store_retention_run(). Used by the
 * background task of the POP3 server and by `loftctl retention run`.
 */
#ifndef LOFT_POP3_RETENTION_H
#define LOFT_POP3_RETENTION_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct auth;
struct auth_policy;
struct auth_user;
struct store;
struct store_retention_report;

/* Called once per account with its policy (NULL if it could not be
 * read): report holds what was removed, or error is not NULL (a short
 * reason) and report is NULL. Returns false to stop before the next
 * account (a shutting-down daemon). */
typedef bool pop3_retention_report_fn(void *ctx, const struct auth_user *user,
				      const struct auth_policy *policy,
				      const struct store_retention_report *report,
				      const char *error);

/* Applies retention as of now to user_id, or to every account when
 * user_id < 0. Returns 0 when every account was processed, -1 if any
 * failed (each failure is reported and logged; the others still run) or
 * report asked to stop. */
int pop3_retention_run(struct store *store, struct auth *auth, int64_t user_id,
		       time_t now, pop3_retention_report_fn *report, void *ctx);

/* The background task (also started by pop3_server_create): applies
 * retention to every account one minute after the start, then every
 * interval seconds. The daemon may start one itself when no POP3
 * listener is configured. */
struct pop3_retention_task;
struct pop3_retention_task *pop3_retention_task_start(struct store *store,
						      struct auth *auth,
						      unsigned interval);
void pop3_retention_task_stop(struct pop3_retention_task **task);
/* The smallest pop3_retention_days of any account as of the last pass
 * (0: every account keeps mail forever), for RFC 2449 "EXPIRE n USER"
 * before login. False until the first pass has run. */
bool pop3_retention_task_expire_min(struct pop3_retention_task *task,
				    uint32_t *days_r);

#endif
