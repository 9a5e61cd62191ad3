/*
 * JMAP (RFC 8620 core, RFC 8621 mail, RFC 9425 quota) over the store.
 *
 * The engine is pure: a request's JSON and the authenticated account in,
 * the response's JSON out (jmap_api, jmap_session), on the caller's
 * thread, which may block (a worker). jmap_http_register puts it behind
 * the HTTP server: /jmap/session (and /.well-known/jmap), /jmap/api,
 * /jmap/upload/, /jmap/download/, /jmap/eventsource/.
 *
 * Every state is a value of the account's change counter (store.h
 * "JMAP"), so a change through any protocol shows in /changes and is
 * pushed; a JMAP change is an ordinary store change, so IMAP IDLE sees it.
 */
#ifndef LOFT_JMAP_H
#define LOFT_JMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auth;
struct buf;
struct config;
struct http_server;
struct jmap;
struct queue;
struct store;

/* [jmap] (docs/config.md): the core capability's limits, all enforced. */
struct jmap_settings {
	uint64_t max_size_upload;          /* default 50M */
	unsigned max_concurrent_upload;    /* default 4 */
	uint64_t max_size_request;         /* default 10M */
	unsigned max_concurrent_requests;  /* default 4 */
	unsigned max_calls_in_request;     /* default 64 */
	unsigned max_objects_in_get;       /* default 1000 */
	unsigned max_objects_in_set;       /* default 1000 */
	/* an upload is kept this long after its last use; default 1h */
	unsigned upload_ttl;
	/* PushSubscription may POST to loopback or private addresses
	 * (tests); default no */
	bool push_private;
	/* largest message Email/set and import may make (the store's
	 * max_message_size) */
	uint64_t max_message_size;
	/* [sharing] cross_domain: the send-as check (shared addresses) */
	bool cross_domain;
};

/* Fills set_r with the defaults, then [jmap]. On a bad value appends
 * "FILE:LINE: message\n" to errors and returns -1. */
int jmap_settings_from_config(const struct config *cfg,
			      struct jmap_settings *set_r, struct buf *errors);

/* store and auth may be NULL (loftd --check: only the settings are
 * checked). Returns NULL with errors filled. */
struct jmap *jmap_create(const struct config *cfg, struct store *store,
			 struct auth *auth, struct buf *errors);
void jmap_destroy(struct jmap **j);
/* EmailSubmission hands messages to the outbound queue. */
void jmap_set_queue(struct jmap *j, struct queue *queue);
/* VacationResponse (RFC 8621 8) is offered once deliveries answer with
 * it (Sieve installed, src/delivery/delivery-sieve.c). */
void jmap_set_vacation(struct jmap *j, bool available);
/* The routes on an HTTP server; -1 with errors filled. */
int jmap_http_register(struct jmap *j, struct http_server *server,
		       struct buf *errors);

/* The authenticated account a request runs for. */
struct jmap_caller {
	int64_t user_id;
	const char *address;
};

/* POST /jmap/api: body is the request. out gets the response object or
 * RFC 7807 problem details (notJSON, notRequest, unknownCapability,
 * limit). Returns the HTTP status: 200, or 400 with the problem in out
 * (problem_r, may be NULL, gets its type). */
unsigned jmap_api(struct jmap *j, const struct jmap_caller *who,
		  const char *body, size_t len, struct buf *out);
/* GET /jmap/session: origin is "https://host:port" for the URLs. */
unsigned jmap_session(struct jmap *j, const struct jmap_caller *who,
		      const char *origin, struct buf *out);

#endif
