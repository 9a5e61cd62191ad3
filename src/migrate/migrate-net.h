/*
 * One client connection for IMAP and POP3 import (migrate-net.c).
 */
#ifndef LOFT_MIGRATE_NET_H
#define LOFT_MIGRATE_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

struct mnet {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	bool tls, loopback;
	char host[256];
	struct buf in;
	char error[1024];          /* why the last call failed */
};

/* TCP (and TLS at once when tls), 0 or -1 with n->error. Certificates
 * are checked against the system's trust store (or the file
 * $LOFT_MIGRATE_CA_FILE) and the host name. */
int mnet_connect(struct mnet *n, const char *host, const char *port,
		 bool tls);
int mnet_starttls(struct mnet *n);
int mnet_write(struct mnet *n, const void *data, size_t len);
int mnet_printf(struct mnet *n, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends one line (with its LF) to out; -1 past max bytes. */
int mnet_read_line(struct mnet *n, struct buf *out, size_t max);
/* Appends exactly len bytes to out. */
int mnet_read_n(struct mnet *n, size_t len, struct buf *out);
void mnet_close(struct mnet *n);

/* imap://USER@HOST:PORT, imaps://, pop3://, pop3s:// (USER
 * percent-decoded; HOST may be [v6]). */
struct migrate_url {
	bool imap, tls;
	char user[256], host[256], port[8];
};
int migrate_url_parse(const char *url, struct migrate_url *u);

#endif
