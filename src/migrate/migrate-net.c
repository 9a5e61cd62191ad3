/*
 * The network side of IMAP and POP3 import: one blocking connection
 * (loftctl runs one import at a time), TCP with a timeout, TLS from
 * OpenSSL with the system's trust store and the host name checked, and
 * plain text only to a loopback address. Lines and literals are read
 * with hard limits.
 */
#include "migrate-net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define NET_TIMEOUT_S 120

static int fail(struct mnet *n, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct mnet *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(n->error, sizeof(n->error), fmt, ap);
	va_end(ap);
	return -1;
}

/* The peer went away (EOF, a read or write error): the connection is
 * closed here, so the import stops at this folder instead of meeting the
 * same error in every later one; n->error keeps the first reason. */
static int lost(struct mnet *n)
{
	if (n->ssl != NULL)
		SSL_free(n->ssl);
	n->ssl = NULL;
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	return -1;
}

static bool addr_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr)
			>> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(
			&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

int mnet_connect(struct mnet *n, const char *host, const char *port,
		 bool tls)
{
	/* a source that closes while we write gives an error, not a
	 * SIGPIPE that kills loftctl in the middle of a batch */
	signal(SIGPIPE, SIG_IGN);
	memset(n, 0, sizeof(*n));
	n->fd = -1;
	buf_init(&n->in, 0);
	snprintf(n->host, sizeof(n->host), "%s", host);
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		return fail(n, "%s: %s", host, gai_strerror(rc));
	int e = 0;
	for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		struct timeval tv = {NET_TIMEOUT_S, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			n->fd = fd;
			n->loopback = addr_loopback(a->ai_addr);
			break;
		}
		e = errno;
		close(fd);
	}
	freeaddrinfo(res);
	if (n->fd < 0)
		return fail(n, "cannot connect to %s port %s: %s", host, port,
			    strerror(e));
	return tls ? mnet_starttls(n) : 0;
}

int mnet_starttls(struct mnet *n)
{
	n->ctx = SSL_CTX_new(TLS_client_method());
	if (n->ctx == NULL)
		return fail(n, "TLS: cannot make a context");
	SSL_CTX_set_min_proto_version(n->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(n->ctx, SSL_VERIFY_PEER, NULL);
	const char *ca = getenv("LOFT_MIGRATE_CA_FILE");
	if (ca != NULL && ca[0] != '\0')
		SSL_CTX_load_verify_locations(n->ctx, ca, NULL);
	else
		SSL_CTX_set_default_verify_paths(n->ctx);
	n->ssl = SSL_new(n->ctx);
	SSL_set_fd(n->ssl, n->fd);
	SSL_set_tlsext_host_name(n->ssl, n->host);
	SSL_set1_host(n->ssl, n->host);
	if (SSL_connect(n->ssl) != 1) {
		long v = SSL_get_verify_result(n->ssl);
		if (v != X509_V_OK)
			return fail(n, "TLS: the certificate of %s is not"
				    " trusted: %s", n->host,
				    X509_verify_cert_error_string(v));
		unsigned long ec = ERR_get_error();
		char msg[160];
		ERR_error_string_n(ec, msg, sizeof(msg));
		return fail(n, "TLS handshake with %s failed: %s", n->host, msg);
	}
	n->tls = true;
	return 0;
}

int mnet_write(struct mnet *n, const void *data, size_t len)
{
	const char *p = data;
	if (n->fd < 0)
		return -1;
	while (len > 0) {
		ssize_t w;
		if (n->ssl != NULL) {
			int r = SSL_write(n->ssl, p, len > INT32_MAX ? INT32_MAX
								   : (int)len);
			w = r > 0 ? r : -1;
		} else {
			w = write(n->fd, p, len);
		}
		if (w < 0) {
			if (n->ssl == NULL && errno == EINTR)
				continue;
			fail(n, "write to %s: %s", n->host,
			     n->ssl ? "TLS error" : strerror(errno));
			return lost(n);
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int mnet_printf(struct mnet *n, const char *fmt, ...)
{
	struct buf b;
	buf_init(&b, 0);
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	int r = mnet_write(n, b.data, b.len);
	buf_free(&b);
	return r;
}

/* More input into n->in; -1 at EOF or on an error. */
static int fill(struct mnet *n)
{
	char tmp[65536];
	ssize_t r;
	if (n->fd < 0)
		return -1;
	if (n->ssl != NULL) {
		int k = SSL_read(n->ssl, tmp, sizeof(tmp));
		r = k > 0 ? k : -1;
	} else {
		do
			r = read(n->fd, tmp, sizeof(tmp));
		while (r < 0 && errno == EINTR);
	}
	if (r == 0 || (r < 0 && n->ssl != NULL)) {
		fail(n, "%s closed the connection", n->host);
		return lost(n);
	}
	if (r < 0) {
		fail(n, "read from %s: %s", n->host,
		     errno == EAGAIN ? "timed out" : strerror(errno));
		return lost(n);
	}
	buf_append(&n->in, tmp, (size_t)r);
	return 0;
}

int mnet_read_line(struct mnet *n, struct buf *out, size_t max)
{
	size_t scan = 0;
	for (;;) {
		char *nl = n->in.len > scan
				   ? memchr(n->in.data + scan, '\n', n->in.len - scan)
				   : NULL;
		if (nl != NULL) {
			size_t len = (size_t)(nl - n->in.data) + 1;
			if (len > max)
				return fail(n, "%s sent a line longer than %zu"
					    " bytes", n->host, max);
			buf_append(out, n->in.data, len);
			buf_consume(&n->in, len);
			return 0;
		}
		scan = n->in.len;
		if (n->in.len > max)
			return fail(n, "%s sent a line longer than %zu bytes",
				    n->host, max);
		if (fill(n) < 0)
			return -1;
	}
}

int mnet_read_n(struct mnet *n, size_t len, struct buf *out)
{
	while (n->in.len < len) {
		size_t have = n->in.len;
		buf_append(out, n->in.data, have);
		buf_consume(&n->in, have);
		len -= have;
		if (fill(n) < 0)
			return -1;
	}
	buf_append(out, n->in.data, len);
	buf_consume(&n->in, len);
	return 0;
}

void mnet_close(struct mnet *n)
{
	if (n->ssl != NULL) {
		SSL_shutdown(n->ssl);
		SSL_free(n->ssl);
	}
	if (n->ctx != NULL)
		SSL_CTX_free(n->ctx);
	if (n->fd >= 0)
		close(n->fd);
	n->ssl = NULL;
	n->ctx = NULL;
	n->fd = -1;
	buf_free(&n->in);
}

int migrate_url_parse(const char *url, struct migrate_url *u)
{
	memset(u, 0, sizeof(*u));
	const char *p;
	if (strncmp(url, "imap://", 7) == 0) {
		u->imap = true;
		p = url + 7;
	} else if (strncmp(url, "imaps://", 8) == 0) {
		u->imap = u->tls = true;
		p = url + 8;
	} else if (strncmp(url, "pop3://", 7) == 0) {
		p = url + 7;
	} else if (strncmp(url, "pop3s://", 8) == 0) {
		u->tls = true;
		p = url + 8;
	} else {
		return -1;
	}
	snprintf(u->port, sizeof(u->port), "%s",
		 u->imap ? (u->tls ? "993" : "143") : (u->tls ? "995" : "110"));
	const char *at = strrchr(p, '@');
	const char *end = p + strcspn(p, "/?#");
	if (at != NULL && at < end) {
		/* the user, percent-decoded (RFC 3986: %40 for @) */
		size_t o = 0;
		for (const char *s = p; s < at; s++) {
			if (o + 1 >= sizeof(u->user))
				return -1;
			if (*s == '%') {
				if (at - s < 3)
					return -1;
				char hex[3] = {s[1], s[2], 0};
				char *e;
				long v = strtol(hex, &e, 16);
				if (*e != '\0' || v <= 0)
					return -1;
				u->user[o++] = (char)v;
				s += 2;
			} else {
				u->user[o++] = *s;
			}
		}
		u->user[o] = '\0';
		p = at + 1;
	}
	if (u->user[0] == '\0')
		return -1;
	size_t hl;
	if (*p == '[') {
		const char *rb = strchr(p, ']');
		if (rb == NULL || rb > end)
			return -1;
		hl = (size_t)(rb - p - 1);
		if (hl >= sizeof(u->host))
			return -1;
		memcpy(u->host, p + 1, hl);
		u->host[hl] = '\0';
		p = rb + 1;
	} else {
		hl = strcspn(p, ":/?#");
		if (hl == 0 || hl >= sizeof(u->host))
			return -1;
		memcpy(u->host, p, hl);
		u->host[hl] = '\0';
		p += hl;
	}
	if (*p == ':') {
		size_t pl = strcspn(p + 1, "/?#");
		if (pl == 0 || pl >= sizeof(u->port))
			return -1;
		memcpy(u->port, p + 1, pl);
		u->port[pl] = '\0';
		for (size_t i = 0; i < pl; i++)
			if (u->port[i] < '0' || u->port[i] > '9')
				return -1;
		p += 1 + pl;
	}
	if (*p != '\0' && strcmp(p, "/") != 0)
		return -1;
	return 0;
}
