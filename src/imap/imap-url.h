/*
 * IMAP URLs (RFC 5092) as CATENATE (RFC 4469) and URLAUTH (RFC 4467) use
 * them: a message, or a part of one, in a mailbox of this server.
 *
 *   imap://joe@example.com/INBOX;UIDVALIDITY=385759045/;UID=20
 *       /;SECTION=1.2/;PARTIAL=0.100;EXPIRE=2026-12-31T23:59:59Z
 *       ;URLAUTH=submit+fred:INTERNAL:<hex token>
 *   /Drafts;UIDVALIDITY=385759045/;UID=20/;SECTION=HEADER   (relative)
 *
 * Keys are case-insensitive; the mailbox and section are %-encoded. The
 * mailbox ends at ";UIDVALIDITY=" or at "/;". imap_url_fetch() gives the
 * octets a URL names: BODY[section]<partial> as FETCH would send them
 * (no transfer decoding).
 */
#ifndef LOFT_IMAP_URL_H
#define LOFT_IMAP_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct store_user;
struct store_error;

struct imap_url {
	char *user;              /* %-decoded userinfo; NULL: none */
	char *host;              /* NULL for a relative URL */
	char *mailbox;           /* %-decoded IMAP mailbox name */
	uint32_t uidvalidity;    /* 0: not given */
	uint32_t uid;
	char *section;           /* %-decoded; NULL: the whole message */
	bool partial;
	uint64_t partial_offset, partial_length;   /* length 0: to the end */
	time_t expire;           /* ;EXPIRE=, 0: none */
	char *access;            /* ;URLAUTH= access identifier, NULL: none */
	char *mechanism;         /* the verifier's mechanism, NULL: none */
	char *token;             /* the verifier's token (hex) */
	size_t rump_len;         /* octets of the URL up to and including the
				    access identifier: what the token signs */
};

/* Parses url. absolute: only "imap://..." (URLAUTH); else a relative
 * "/mailbox..." is accepted too (CATENATE). -1 with a short reason
 * (static) in *error_r. */
int imap_url_parse(const char *url, bool absolute, struct imap_url *u_r,
		   const char **error_r);
void imap_url_free(struct imap_url *u);

/* The octets u names in store_mailbox (a store name) of user: checks the
 * UIDVALIDITY when the URL has one. *data_r is the caller's (free).
 * NOTFOUND when the message or mailbox is not there (or the UIDVALIDITY
 * changed), INVALID for a section that cannot be read. */
int imap_url_fetch(struct store_user *user, const char *store_mailbox,
		   const struct imap_url *u, char **data_r, size_t *len_r,
		   struct store_error *err);

#endif
