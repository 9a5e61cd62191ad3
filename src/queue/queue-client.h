/*
 * The outbound SMTP client of the queue (RFC 5321 as a client): one
 * connection to one host, blocking with timeouts, on a queue thread.
 * EHLO (HELO fallback), STARTTLS with certificate or DANE-TLSA checks,
 * AUTH PLAIN, and a transaction with PIPELINING, SIZE, 8BITMIME,
 * SMTPUTF8, DSN and REQUIRETLS parameters when the server offers them.
 * Kept narrow (connect, hello, starttls, auth, send, quit) so a process
 * of its own can run it later (privilege separation).
 */
#ifndef LOFT_QUEUE_CLIENT_H
#define LOFT_QUEUE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qclient;

struct qreply {
	int code;               /* 0: no reply (connection lost, timeout) */
	char enhanced[12];
	char text[512];         /* the lines joined with "; " */
};

/* The server's extensions after EHLO. */
struct qclient_ext {
	bool esmtp, starttls, pipelining, size, eightbit, smtputf8, dsn,
	     auth_plain, requiretls, chunking;
	uint64_t size_max;
};

/* TLSA records (RFC 6698) to check the server's certificate against. */
struct qtlsa {
	uint8_t usage, selector, mtype;
	const uint8_t *data;
	size_t len;
};

/* Connects to addr (numeric IPv4/IPv6) port; reads the greeting into
 * *greet_r. implicit_tls: TLS from the first byte (port 465). Returns
 * NULL with greet_r->code 0 and a reason in its text on failure. */
struct qclient *qclient_connect(const char *host, const char *addr,
				unsigned port, unsigned connect_timeout,
				unsigned command_timeout, bool implicit_tls,
				const char *ca_file, struct qreply *greet_r);
void qclient_close(struct qclient **c, bool quit);

const char *qclient_host(const struct qclient *c);
const char *qclient_addr(const struct qclient *c);
bool qclient_is_tls(const struct qclient *c);
bool qclient_verified(const struct qclient *c);
/* How the connection is protected: "none", "tls" (unverified), "pkix",
 * "dane". */
const char *qclient_tls_mode(const struct qclient *c);
const struct qclient_ext *qclient_ext(const struct qclient *c);

/* EHLO, or HELO when EHLO is refused. 0 on a 2xx. */
int qclient_hello(struct qclient *c, const char *name, struct qreply *r);

enum qtls_verify {
	QTLS_NONE,         /* encrypt, accept any certificate */
	QTLS_PKIX,         /* a certificate chain to a trusted CA, valid for
			      the host name (or one of names) */
	QTLS_DANE,         /* one of the TLSA records matches */
};
/* STARTTLS and the handshake, then EHLO again. verify decides what must
 * hold; names (NULL-terminated, may be NULL) are more acceptable names
 * for PKIX (MTA-STS mx patterns). -1 with the reason in r. */
int qclient_starttls(struct qclient *c, enum qtls_verify verify,
		     const char *const *names, const struct qtlsa *tlsa,
		     size_t tlsa_count, const char *hello_name,
		     struct qreply *r);
/* AUTH PLAIN. */
int qclient_auth_plain(struct qclient *c, const char *user,
		       const char *password, struct qreply *r);

/* One transaction. rcpt_params[i] and mail_params are the ESMTP
 * parameters (without leading space, may be ""). The message is prefix
 * then body (CRLF line ends; dot-stuffed here). rcpt_r[i] gets each
 * RCPT's reply, data_r the reply after the data (code 0 if no recipient
 * was accepted). Returns 0 when the conversation stayed in sync (the
 * connection may be reused), -1 when it broke. */
int qclient_send(struct qclient *c, const char *sender,
		 const char *mail_params, const char *const *rcpts,
		 const char *const *rcpt_params, size_t rcpt_count,
		 const char *prefix, const void *body, size_t body_len,
		 struct qreply *mail_r, struct qreply *rcpt_r,
		 struct qreply *data_r);
/* RSET, for reuse after a transaction that ended early. */
int qclient_rset(struct qclient *c);

#endif
