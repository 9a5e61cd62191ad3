/*
 * The outbound SMTP client (queue-client.h). Blocking sockets with
 * SO_RCVTIMEO/SO_SNDTIMEO for the command timeout, a non-blocking
 * connect bounded by the connect timeout, OpenSSL for TLS (its DANE
 * support checks TLSA records, RFC 7671/7672).
 */
#include "queue-client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "buf.h"
#include "base64.h"
#include "log.h"
#include "outconn.h"

#define QCLIENT_IN 8192

struct qclient {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	bool verified;
	const char *tls_mode;    /* "none", "tls", "pkix", "dane" */
	char host[256];
	char addr[64];
	char in[QCLIENT_IN];
	size_t in_len;
	struct qclient_ext ext;
	char *ca_file;
	struct buf out;          /* pipelined commands not yet sent */
};

static void reply_fail(struct qreply *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reply_fail(struct qreply *r, const char *fmt, ...)
{
	va_list ap;

	r->code = 0;
	r->enhanced[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* ---- raw I/O ------------------------------------------------------ */

static int raw_write(struct qclient *c, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n;
		if (c->ssl != NULL) {
			int w = SSL_write(c->ssl, p, (int)(len > 1 << 20 ? 1 << 20 : len));
			n = w > 0 ? w : -1;
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
		}
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int flush_out(struct qclient *c)
{
	int rc = 0;

	if (c->out.len > 0)
		rc = raw_write(c, c->out.data, c->out.len);
	buf_reset(&c->out);
	return rc;
}

static ssize_t raw_read(struct qclient *c, char *p, size_t size)
{
	for (;;) {
		ssize_t n;
		if (c->ssl != NULL) {
			int r = SSL_read(c->ssl, p, (int)size);
			return r > 0 ? r : -1;
		}
		n = recv(c->fd, p, size, 0);
		if (n < 0 && errno == EINTR)
			continue;
		return n > 0 ? n : -1;
	}
}

/* One line without its CRLF (at most size - 1 bytes; longer ones are
 * cut). -1 on EOF or timeout. */
static int read_line(struct qclient *c, char *line, size_t size)
{
	for (;;) {
		char *nl = memchr(c->in, '\n', c->in_len);
		if (nl != NULL) {
			size_t n = (size_t)(nl - c->in), keep = n;
			if (keep > 0 && c->in[keep - 1] == '\r')
				keep--;
			if (keep >= size)
				keep = size - 1;
			memcpy(line, c->in, keep);
			line[keep] = '\0';
			c->in_len -= n + 1;
			memmove(c->in, nl + 1, c->in_len);
			return 0;
		}
		if (c->in_len == sizeof(c->in))
			c->in_len = 0; /* a line longer than any reply: drop */
		ssize_t got = raw_read(c, c->in + c->in_len,
				       sizeof(c->in) - c->in_len);
		if (got <= 0)
			return -1;
		c->in_len += (size_t)got;
	}
}

static bool is_enhanced(const char *s, size_t *len_r)
{
	size_t i = 0, parts = 0;

	if (s[0] < '2' || s[0] > '5' || s[1] != '.')
		return false;
	for (i = 0; s[i] != '\0' && s[i] != ' '; i++) {
		if (s[i] == '.')
			parts++;
		else if (s[i] < '0' || s[i] > '9')
			return false;
	}
	*len_r = i;
	return parts == 2 && i < 12;
}

/* A whole reply (multi-line joined). */
static int read_reply(struct qclient *c, struct qreply *r)
{
	char line[1024];
	size_t tlen = 0;

	r->code = 0;
	r->enhanced[0] = '\0';
	r->text[0] = '\0';
	for (;;) {
		if (read_line(c, line, sizeof(line)) < 0) {
			reply_fail(r, "connection lost or timed out");
			return -1;
		}
		if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' ||
		    line[2] > '9' || (line[3] != ' ' && line[3] != '-' &&
				      line[3] != '\0')) {
			reply_fail(r, "garbled reply");
			return -1;
		}
		int code = atoi(line);
		const char *text = line[3] != '\0' ? line + 4 : "";
		size_t elen;
		if (r->code != 0 && code != r->code) {
			reply_fail(r, "garbled multi-line reply");
			return -1;
		}
		r->code = code;
		if (is_enhanced(text, &elen)) {
			if (r->enhanced[0] == '\0')
				snprintf(r->enhanced, sizeof(r->enhanced),
					 "%.*s", (int)elen, text);
			text += elen;
			while (*text == ' ')
				text++;
		}
		if (tlen + 3 < sizeof(r->text)) {
			tlen += (size_t)snprintf(r->text + tlen,
						 sizeof(r->text) - tlen, "%s%s",
						 tlen > 0 ? "; " : "", text);
			if (tlen >= sizeof(r->text))
				tlen = sizeof(r->text) - 1;
		}
		if (line[3] != '-')
			return 0;
	}
}

static int command(struct qclient *c, struct qreply *r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int command(struct qclient *c, struct qreply *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
	buf_append(&c->out, "\r\n", 2);
	if (flush_out(c) < 0) {
		reply_fail(r, "connection lost while sending");
		return -1;
	}
	return read_reply(c, r);
}

/* ---- connecting --------------------------------------------------- */

static void set_timeouts(int fd, unsigned seconds)
{
	struct timeval tv = {.tv_sec = seconds};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int connect_addr(const char *addr, unsigned port, unsigned timeout,
			struct qreply *r)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			goto bad;
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			goto bad;
		sl = sizeof(*s4);
	}
	char *err = NULL;
	fd = outconn_connect((struct sockaddr *)&ss, sl, timeout * 1000, &err);
	if (fd < 0) {
		reply_fail(r, "connect to %s: %s", addr, err);
		free(err);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
bad:
	reply_fail(r, "bad address %s", addr);
	return -1;
}

static SSL_CTX *client_ctx(const char *ca_file)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_default_verify_paths(ctx);
	if (ca_file != NULL)
		SSL_CTX_load_verify_locations(ctx, ca_file, NULL);
	SSL_CTX_dane_enable(ctx);
	return ctx;
}

static void tls_error_text(struct qreply *r, const char *what, SSL *ssl)
{
	unsigned long e = ERR_get_error();
	long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	char buf[200];

	if (v != X509_V_OK)
		snprintf(buf, sizeof(buf), "%s", X509_verify_cert_error_string(v));
	else if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "handshake failed");
	ERR_clear_error();
	reply_fail(r, "%s: %s", what, buf);
}

static int handshake(struct qclient *c, enum qtls_verify verify,
		     const char *const *names, const struct qtlsa *tlsa,
		     size_t tlsa_count, struct qreply *r)
{
	if (c->ctx == NULL)
		c->ctx = client_ctx(c->ca_file);
	c->ssl = c->ctx != NULL ? SSL_new(c->ctx) : NULL;
	if (c->ssl == NULL) {
		reply_fail(r, "TLS: cannot set up");
		return -1;
	}
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_tlsext_host_name(c->ssl, c->host);
	if (verify == QTLS_DANE) {
		/* RFC 7672 3.1.3: DANE-EE ignores names and dates */
		SSL_dane_enable(c->ssl, c->host);
		SSL_dane_set_flags(c->ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
		for (size_t i = 0; i < tlsa_count; i++)
			SSL_dane_tlsa_add(c->ssl, tlsa[i].usage, tlsa[i].selector,
					  tlsa[i].mtype, tlsa[i].data, tlsa[i].len);
		SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	} else if (verify == QTLS_PKIX) {
		SSL_set1_host(c->ssl, c->host);
		for (size_t i = 0; names != NULL && names[i] != NULL; i++)
			SSL_add1_host(c->ssl, names[i]);
		SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
	}
	if (SSL_connect(c->ssl) != 1) {
		tls_error_text(r, "TLS", c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
		return -1;
	}
	c->verified = verify != QTLS_NONE ||
		      SSL_get_verify_result(c->ssl) == X509_V_OK;
	c->tls_mode = verify == QTLS_DANE ? "dane"
		      : verify == QTLS_PKIX ? "pkix" : "tls";
	return 0;
}

struct qclient *qclient_connect(const char *host, const char *addr,
				unsigned port, unsigned connect_timeout,
				unsigned command_timeout, bool implicit_tls,
				const char *ca_file, struct qreply *greet_r)
{
	struct qclient *c;
	int fd = connect_addr(addr, port, connect_timeout, greet_r);

	if (fd < 0)
		return NULL;
	set_timeouts(fd, command_timeout);
	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	buf_init(&c->out, 0);
	snprintf(c->host, sizeof(c->host), "%s", host);
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	c->ca_file = ca_file != NULL ? xstrdup(ca_file) : NULL;
	/* implicit TLS is a smarthost's: a certificate it must show */
	if (implicit_tls &&
	    handshake(c, QTLS_PKIX, NULL, NULL, 0, greet_r) < 0) {
		qclient_close(&c, false);
		return NULL;
	}
	if (read_reply(c, greet_r) < 0 || greet_r->code != 220) {
		if (greet_r->code != 0 && greet_r->code != 220)
			qclient_close(&c, true);
		else
			qclient_close(&c, false);
		if (greet_r->code == 220)
			greet_r->code = 0;
		return NULL;
	}
	return c;
}

void qclient_close(struct qclient **cp, bool quit)
{
	struct qclient *c = *cp;
	struct qreply r;

	if (c == NULL)
		return;
	if (quit)
		command(c, &r, "QUIT");
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->ctx != NULL)
		SSL_CTX_free(c->ctx);
	close(c->fd);
	buf_free(&c->out);
	free(c->ca_file);
	free(c);
	*cp = NULL;
}

const char *qclient_host(const struct qclient *c) { return c->host; }
const char *qclient_addr(const struct qclient *c) { return c->addr; }
bool qclient_is_tls(const struct qclient *c) { return c->ssl != NULL; }
bool qclient_verified(const struct qclient *c) { return c->verified; }
const char *qclient_tls_mode(const struct qclient *c)
{
	return c->ssl == NULL ? "none" : c->tls_mode ? c->tls_mode : "tls";
}
const struct qclient_ext *qclient_ext(const struct qclient *c)
{
	return &c->ext;
}

/* ---- hello, TLS, AUTH --------------------------------------------- */

static void parse_ext(struct qclient_ext *e, const char *text)
{
	/* read_reply joined the lines with "; " */
	const char *p = text;

	memset(e, 0, sizeof(*e));
	e->esmtp = true;
	while (p != NULL && *p != '\0') {
		const char *end = strstr(p, "; ");
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		char kw[64];
		snprintf(kw, sizeof(kw), "%.*s", (int)(n < 63 ? n : 63), p);
		if (strcasecmp(kw, "STARTTLS") == 0) e->starttls = true;
		else if (strcasecmp(kw, "PIPELINING") == 0) e->pipelining = true;
		else if (strcasecmp(kw, "8BITMIME") == 0) e->eightbit = true;
		else if (strcasecmp(kw, "SMTPUTF8") == 0) e->smtputf8 = true;
		else if (strcasecmp(kw, "DSN") == 0) e->dsn = true;
		else if (strcasecmp(kw, "REQUIRETLS") == 0) e->requiretls = true;
		else if (strcasecmp(kw, "CHUNKING") == 0) e->chunking = true;
		else if (strncasecmp(kw, "SIZE", 4) == 0 &&
			 (kw[4] == '\0' || kw[4] == ' ')) {
			e->size = true;
			e->size_max = strtoull(kw + 4, NULL, 10);
		} else if (strncasecmp(kw, "AUTH ", 5) == 0 ||
			   strncasecmp(kw, "AUTH=", 5) == 0) {
			for (const char *m = kw + 5; *m != '\0';) {
				size_t l = strcspn(m, " ");
				if (l == 5 && strncasecmp(m, "PLAIN", 5) == 0)
					e->auth_plain = true;
				m += l;
				while (*m == ' ')
					m++;
			}
		}
		p = end != NULL ? end + 2 : NULL;
	}
}

int qclient_hello(struct qclient *c, const char *name, struct qreply *r)
{
	if (command(c, r, "EHLO %s", name) < 0)
		return -1;
	if (r->code == 250) {
		/* the first line is the greeting name, not an extension */
		const char *first = strstr(r->text, "; ");
		parse_ext(&c->ext, first != NULL ? first + 2 : "");
		return 0;
	}
	if (r->code >= 500) {
		memset(&c->ext, 0, sizeof(c->ext));
		if (command(c, r, "HELO %s", name) < 0)
			return -1;
		return r->code == 250 ? 0 : -1;
	}
	return -1;
}

int qclient_starttls(struct qclient *c, enum qtls_verify verify,
		     const char *const *names, const struct qtlsa *tlsa,
		     size_t tlsa_count, const char *hello_name,
		     struct qreply *r)
{
	if (command(c, r, "STARTTLS") < 0)
		return -1;
	if (r->code != 220)
		return -1;
	/* RFC 3207 4.2: anything the server sent before is discarded */
	c->in_len = 0;
	if (handshake(c, verify, names, tlsa, tlsa_count, r) < 0)
		return -1;
	return qclient_hello(c, hello_name, r);
}

int qclient_auth_plain(struct qclient *c, const char *user,
		       const char *password, struct qreply *r)
{
	size_t ul = strlen(user), pl = strlen(password);
	char *raw = xmalloc(ul + pl + 2), *b64;
	int rc;

	raw[0] = '\0';
	memcpy(raw + 1, user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, password, pl);
	b64 = base64_encode(raw, ul + pl + 2);
	explicit_bzero(raw, ul + pl + 2);
	free(raw);
	rc = command(c, r, "AUTH PLAIN %s", b64);
	explicit_bzero(b64, strlen(b64));
	free(b64);
	return rc == 0 && r->code == 235 ? 0 : -1;
}

/* ---- the transaction ---------------------------------------------- */

/* The message, dot-stuffed, with CRLF line ends (a bare LF becomes CRLF),
 * a CRLF added if it does not end with one, then ".". */
static int send_data(struct qclient *c, const char *prefix, const char *body,
		     size_t len)
{
	struct buf out;
	bool bol = true;
	int rc = 0;

	buf_init(&out, 0);
	if (prefix != NULL)
		buf_append_str(&out, prefix);
	for (size_t i = 0; i < len && rc == 0; i++) {
		char ch = body[i];
		if (bol && ch == '.')
			buf_append_char(&out, '.');
		if (ch == '\n' && (i == 0 || body[i - 1] != '\r'))
			buf_append_char(&out, '\r');
		buf_append_char(&out, ch);
		bol = ch == '\n';
		if (out.len >= 65536) {
			rc = raw_write(c, out.data, out.len);
			buf_reset(&out);
		}
	}
	if (rc == 0) {
		if (!bol)
			buf_append_str(&out, "\r\n");
		buf_append_str(&out, ".\r\n");
		rc = raw_write(c, out.data, out.len);
	}
	buf_free(&out);
	return rc;
}

int qclient_send(struct qclient *c, const char *sender,
		 const char *mail_params, const char *const *rcpts,
		 const char *const *rcpt_params, size_t rcpt_count,
		 const char *prefix, const void *body, size_t body_len,
		 struct qreply *mail_r, struct qreply *rcpt_r,
		 struct qreply *data_r)
{
	bool pipe = c->ext.pipelining;
	size_t accepted = 0;
	struct qreply dr;

	reply_fail(data_r, "not sent");
	for (size_t i = 0; i < rcpt_count; i++)
		reply_fail(&rcpt_r[i], "not sent");
	buf_printf(&c->out, "MAIL FROM:<%s>%s%s\r\n", sender,
		   mail_params[0] ? " " : "", mail_params);
	if (!pipe && flush_out(c) < 0)
		goto lost;
	if (!pipe && (read_reply(c, mail_r) < 0 || mail_r->code != 250))
		return mail_r->code != 0 ? 0 : -1;
	for (size_t i = 0; i < rcpt_count; i++) {
		buf_printf(&c->out, "RCPT TO:<%s>%s%s\r\n", rcpts[i],
			   rcpt_params[i][0] ? " " : "", rcpt_params[i]);
		if (pipe)
			continue;
		if (flush_out(c) < 0 || read_reply(c, &rcpt_r[i]) < 0)
			goto lost;
		accepted += rcpt_r[i].code / 100 == 2;
	}
	if (pipe) {
		/* RFC 2920 3.1: DATA is the last command of the group */
		buf_append_str(&c->out, "DATA\r\n");
		if (flush_out(c) < 0 || read_reply(c, mail_r) < 0)
			goto lost;
		for (size_t i = 0; i < rcpt_count; i++) {
			if (read_reply(c, &rcpt_r[i]) < 0)
				goto lost;
			if (mail_r->code == 250)
				accepted += rcpt_r[i].code / 100 == 2;
		}
		if (read_reply(c, &dr) < 0)
			goto lost;
		if (dr.code != 354) {
			if (accepted > 0)
				*data_r = dr;
			if (mail_r->code == 250 && accepted > 0)
				return 0;
			return 0;
		}
		if (accepted == 0) {
			/* 354 with nobody accepted: send an empty message to
			 * end DATA; RFC 2920 3.1 expects a 554 after it */
			if (raw_write(c, ".\r\n", 3) < 0 || read_reply(c, &dr) < 0)
				goto lost;
			return 0;
		}
	} else {
		if (accepted == 0)
			return 0;
		if (command(c, &dr, "DATA") < 0)
			goto lost;
		if (dr.code != 354) {
			*data_r = dr;
			return 0;
		}
	}
	if (send_data(c, prefix, body, body_len) < 0 ||
	    read_reply(c, data_r) < 0)
		goto lost;
	return 0;
lost:
	reply_fail(data_r, "connection lost or timed out");
	if (mail_r->code == 0)
		reply_fail(mail_r, "connection lost or timed out");
	return -1;
}

int qclient_rset(struct qclient *c)
{
	struct qreply r;
	return command(c, &r, "RSET") == 0 && r.code == 250 ? 0 : -1;
}
