/*
 * Inside the delivery module: the shared structs of delivery.c and
 * delivery-sieve.c (Sieve at delivery: scripts run per recipient before
 * the commit, their copies and records committed together, replies
 * queued after).
 */
#ifndef LOFT_DELIVERY_PRIVATE_H
#define LOFT_DELIVERY_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "delivery.h"
#include "store.h"

struct dsieve_plan;

/* Store handles a session keeps between transactions: an MTA sends many
 * messages over one connection, often to the same few users, and opening
 * a user's index costs more than a delivery. */
#define USER_CACHE 16
/* Copies committed at once on short-lived threads beside the worker. */
#define PARALLEL_COMMITS 8

struct delivery {
	struct store *store;
	struct auth *auth;
	char hostname[256];
	delivery_filter_fn *filter;
	void *filter_ctx;
};

struct drcpt {
	char *address;          /* unquoted */
	char *display;          /* as in replies and headers */
	int64_t user_id;
	struct store_user *user;
	char *mailbox;          /* "INBOX" or the +detail folder */
	bool over_quota_tempfail;
	int dup_of;             /* shares the copy of this recipient, or -1 */
	struct delivery_reply reply;
	unsigned flags;         /* set by the filter */
	struct dsieve_plan *plan;  /* Sieve's decision (delivery-sieve.c) */
};

struct delivery_session {
	struct delivery *d;
	char sid[32];
	struct delivery_envelope env;
	char *sender, *helo, *peer, *with, *id, *extra, *spam_action;
	struct drcpt *rcpts;
	unsigned count, cap;
	bool started;           /* the body was created */
	struct store_body *body;  /* NULL before DATA or once it failed */
	bool too_big;
	struct buf copy;        /* the message, when a filter wants it */
	struct store_user *cache[USER_CACHE];
	unsigned cache_next;
};

/* delivery.c */
void delivery_trace_fields(struct delivery_session *s, const struct drcpt *r,
			   struct buf *out);
void delivery_reply_set(struct delivery_reply *r, int code,
			const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void delivery_reply_store_error(struct delivery_session *s, struct drcpt *r,
				const struct store_error *err);

/* delivery-sieve.c: whether Sieve is installed; the plan of a
 * recipient (run before the commits); its commit (all copies and
 * records in one transaction; sets r->reply); the messages it sends,
 * after the commit; freeing. */
bool dsieve_enabled(void);
void dsieve_plan(struct delivery_session *s, struct drcpt *r);
void dsieve_commit(struct delivery_session *s, struct drcpt *r);
void dsieve_send(struct delivery_session *s, struct drcpt *r);
void dsieve_plan_free(struct dsieve_plan **plan);

#endif
