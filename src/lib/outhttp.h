/*
 * Outbound HTTP requests of a process: rspamd's scan, MTA-STS policies,
 * Web Push. Without a broker they are made here with libcurl. In loftd's
 * mail process a broker is set (daemon-outbound.c): the outbound process
 * makes the request and returns the answer, as the mail process may not
 * open a TCP connection (Landlock) and Debian 12's libcurl 7.88 cannot
 * use a socket connected elsewhere (it calls connect(2) on it again:
 * curl issue 10626). The request travels as outwire.h says. Thread-safe.
 */
#ifndef LOFT_OUTHTTP_H
#define LOFT_OUTHTTP_H

#include <stdbool.h>
#include <stddef.h>

/* Bounds every request keeps (outwire.h refuses more). */
#define OUTHTTP_URL_MAX 4096
#define OUTHTTP_HEADER_MAX 1024          /* one "Name: value" line */
#define OUTHTTP_HEADERS_MAX 10000        /* rspamd: one Rcpt per recipient */
#define OUTHTTP_BODY_MAX (64u * 1024 * 1024)
#define OUTHTTP_ANSWER_MAX (256u * 1024) /* answer body kept, at most */
#define OUTHTTP_TIMEOUT_MAX 300000       /* ms */

struct outhttp_request {
	const char *method;          /* "GET" or "POST" */
	const char *url;             /* https://..., or http://... */
	bool https_only;             /* refuse http:// (and redirects: none) */
	const char *resolve;         /* NULL, or CURLOPT_RESOLVE's
					"HOST:PORT:ADDRESS" pinning the host */
	const char *ca_file;         /* NULL: the system's CAs; else this
					file besides /etc/ssl/certs */
	const char *const *headers;  /* "Name: value"; "Name:" drops curl's */
	size_t header_count;
	const char *body;            /* POST */
	size_t body_len;
	unsigned timeout_ms;         /* the whole request, 1..TIMEOUT_MAX */
	unsigned connect_timeout_ms; /* 1..timeout_ms */
	size_t answer_max;           /* body bytes kept (more: an error);
					0: the body is discarded */
};

struct outhttp_answer {
	unsigned status;             /* HTTP status, 100..599 */
	char *content_type;          /* NULL when the server sent none */
	char *body;                  /* NUL-terminated; NULL when discarded */
	size_t body_len;
};

/* Returns 0 with *answer_r filled (any HTTP status), or -1 with *error_r
 * (a short reason: "Timeout was reached", "the outbound process is not
 * available", ...). */
typedef int outhttp_fn(void *ctx, const struct outhttp_request *req,
		       struct outhttp_answer *answer_r, char **error_r);

/* Sets the process's broker (NULL: requests are made here). */
void outhttp_set_broker(outhttp_fn *fn, void *ctx);

/* One request, through the broker if any. */
int outhttp_perform(const struct outhttp_request *req,
		    struct outhttp_answer *answer_r, char **error_r);
/* The same, always here with libcurl (the broker itself, tests). */
int outhttp_perform_here(const struct outhttp_request *req,
			 struct outhttp_answer *answer_r, char **error_r);
/* libcurl's global state; called by outhttp_perform_here, or early by a
 * process that is confined next (it reads OpenSSL's configuration). */
void outhttp_init(void);

void outhttp_answer_free(struct outhttp_answer *a);

#endif
