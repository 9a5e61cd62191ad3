/*
 * The mail services a client sets up (IMAP, POP3, submission), as loftd's
 * listener sections name them, in the order clients should prefer them
 * (implicit TLS first, RFC 8314). Client set-up (autoconfig,
 * Autodiscover, .mobileconfig in src/http) and `loftctl dns` read the
 * configured listeners through this one table, so a new listener section
 * (submission, submissions) shows up in all of them at once.
 */
#ifndef LOFT_MAILSVC_H
#define LOFT_MAILSVC_H

#include <stdbool.h>

struct config;

enum mailsvc_kind { MAILSVC_IMAP, MAILSVC_POP3, MAILSVC_SMTP };

struct mailsvc {
	const char *section;      /* "imaps" */
	enum mailsvc_kind kind;
	bool implicit_tls;        /* false: STARTTLS on a plain port */
	const char *srv;          /* "_imaps._tcp" (RFC 6186, RFC 8314) */
	unsigned srv_priority;    /* implicit TLS preferred */
};

/* Ends with a {NULL} entry. */
extern const struct mailsvc mailsvc_table[];

/* The port of a listen address ("*:993", "[::1]:993", "10.0.0.1:993"),
 * or 0 (unix:, malformed); *loopback_r: the address is loopback only. */
unsigned mailsvc_port(const char *addr, bool *loopback_r);
/* The port to advertise for a section's `listen` list: the first
 * address reachable from outside, else the first one; 0 if none. */
unsigned mailsvc_listen_port(const char *listen);
/* "imap", "pop3", "smtp" */
const char *mailsvc_kind_name(enum mailsvc_kind kind);

#endif
