/*
 * DNS for mail: MX, A/AAAA, TXT, TLSA and PTR lookups through libunbound,
 * a validating resolver (DNSSEC), so DANE (RFC 7672) can tell a secure
 * answer from an insecure one and a forged one (bogus).
 *
 * Queries are asynchronous: a batch (struct dns_batch) sends every query
 * it is given at once and waits for all of them with one deadline, so
 * the lookups of one message (SPF includes, DKIM keys, DMARC policy) run
 * in parallel and are bounded together. Nothing here ever runs on an I/O
 * thread: the callers are workers and queue threads, which may wait.
 *
 * Configuration ([dns]):
 *   resolvers = ADDRESS[:PORT], ...   forwarders (default: the system's
 *                                     nameservers from /etc/resolv.conf)
 *   timeout = 5s                      per query
 *   message_timeout = 20s             all lookups of one message (SPF,
 *                                     DKIM keys, DMARC) together
 *   trust_anchor = FILE               root key (default Debian's
 *                                     /usr/share/dns/root.key); "none"
 *                                     turns validation off
 */
#ifndef LOFT_DNS_H
#define LOFT_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct config;
struct dns;
struct dns_batch;

struct dns_settings {
	char **resolvers;            /* NULL: /etc/resolv.conf */
	size_t resolver_count;
	unsigned timeout_ms;         /* per query; default 5000 */
	unsigned message_timeout_ms; /* one message's lookups; default 20000 */
	const char *trust_anchor;    /* NULL: no validation */
};

/* Fills set_r from [dns]; call dns_settings_deinit after. Returns -1
 * with "FILE:LINE: message\n" lines appended to errors. */
int dns_settings_from_config(const struct config *cfg,
			     struct dns_settings *set_r, struct buf *errors);
void dns_settings_deinit(struct dns_settings *set);
/* The TCP ports the resolver may connect to (53 and the forwarders'):
 * loftd's mail process may connect to nothing else. Returns the count
 * (at most max). */
size_t dns_settings_ports(const struct dns_settings *set, uint16_t *ports,
			  size_t max);

/* Creates the resolver (thread-safe: one serves every thread). */
int dns_create(const struct dns_settings *set, struct dns **dns_r,
	       char **error_r);
void dns_destroy(struct dns **dns);

enum dns_type {
	DNS_A = 1, DNS_PTR = 12, DNS_MX = 15, DNS_TXT = 16, DNS_AAAA = 28,
	DNS_TLSA = 52,
};

enum dns_status {
	DNS_OK,          /* records in the answer */
	DNS_NODATA,      /* the name exists, no record of this type */
	DNS_NXDOMAIN,    /* no such name */
	DNS_TEMPFAIL,    /* timeout, SERVFAIL, network: try again later */
	DNS_BOGUS,       /* DNSSEC validation failed: never use it */
};

/* One answer: rdata of each record, as on the wire (names uncompressed). */
struct dns_answer {
	enum dns_status status;
	bool secure;                 /* DNSSEC-validated */
	char *canonical;             /* the name after CNAMEs, or NULL */
	size_t count;
	uint8_t **data;
	size_t *len;
};
void dns_answer_free(struct dns_answer *a);

/* A batch of queries, all sent at once. */
struct dns_batch *dns_batch_create(struct dns *dns);
/* Adds a query; returns its index for dns_batch_answer. */
size_t dns_batch_add(struct dns_batch *b, const char *name, enum dns_type type);
/* Waits until every query is answered or deadline_ms (from now) passes;
 * unanswered queries are cancelled and read TEMPFAIL. */
void dns_batch_wait(struct dns_batch *b, unsigned deadline_ms);
const struct dns_answer *dns_batch_answer(const struct dns_batch *b,
					  size_t index);
void dns_batch_free(struct dns_batch **b);

/* One query, waited for up to the per-query timeout. */
void dns_query(struct dns *dns, const char *name, enum dns_type type,
	       struct dns_answer *answer_r);
unsigned dns_timeout_ms(const struct dns *dns);
unsigned dns_message_timeout_ms(const struct dns *dns);

/* ---- record helpers (pure; fuzzed) ------------------------------- */

/* A wire name at data[*off] (uncompressed) as text without the trailing
 * dot, lowercase. Returns -1 if malformed. */
int dns_wire_name(const uint8_t *data, size_t len, size_t *off,
		  char *out, size_t out_size);

struct dns_mx {
	unsigned pref;
	char host[256];
};
/* MX rdata -> pref and host. -1 if malformed. */
int dns_parse_mx(const uint8_t *data, size_t len, struct dns_mx *mx_r);
/* TXT rdata: its character-strings concatenated (RFC 7208 3.3), into a
 * NUL-terminated allocation; NULL if malformed. */
char *dns_parse_txt(const uint8_t *data, size_t len);

/* The MX hosts of a domain, by preference (RFC 5321 5.1): equal
 * preferences in random order. No MX record but the domain exists: the
 * domain itself (implicit MX). Null MX (RFC 7505, "." alone): *null_mx_r
 * and count 0. *secure_r: the MX answer was DNSSEC-validated. */
int dns_mx_hosts(struct dns *dns, const char *domain, struct dns_mx **mx_r,
		 size_t *count_r, bool *null_mx_r, bool *secure_r,
		 enum dns_status *status_r);

/* "1.2.3.4" -> "4.3.2.1.in-addr.arpa", IPv6 nibbles -> ip6.arpa. */
int dns_reverse_name(const char *ip, char *out, size_t size);

#endif
