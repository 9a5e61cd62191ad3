/*
 * The TLS server context shared by every listener and STARTTLS: TLS 1.2
 * and later only, forward-secret AEAD ciphers for TLS 1.2 (Mozilla's
 * "intermediate" profile; TLS 1.3 suites are OpenSSL's defaults), no TLS
 * compression, renegotiation off. Buffers of idle connections are released
 * (SSL_MODE_RELEASE_BUFFERS) so an idle TLS session stays small.
 *
 * The certificate chain and key are taken as PEM text in memory: under
 * privilege separation the parent reads the files (root-only keys, as
 * certbot leaves them) and hands the text to the mail process. A new pair
 * (SIGHUP) replaces the context for new handshakes only: every SSL made
 * from the old context holds a reference to it, so open sessions keep it.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "net-private.h"

#define NET_TLS12_CIPHERS                                               \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"    \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"    \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"    \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

/* Certificate and key files are small; anything bigger is not one. */
#define NET_TLS_FILE_MAX (1024 * 1024)

static char *net_tls_error(const char *what, const char *name)
{
	unsigned long e = ERR_peek_last_error();
	char msg[256] = "";
	if (e != 0)
		ERR_error_string_n(e, msg, sizeof(msg));
	ERR_clear_error();
	return xasprintf("%s %s: %s", what, name, e ? msg : "failed");
}

/* Never prompts for a passphrase (OpenSSL's default reads the terminal). */
static int net_tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static int net_tls_load_chain(SSL_CTX *ctx, const char *pem, size_t len,
			      const char *name, char **error_r)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *leaf = bio ? PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL) : NULL;
	if (leaf == NULL || SSL_CTX_use_certificate(ctx, leaf) != 1) {
		*error_r = net_tls_error("cannot load certificate", name);
		X509_free(leaf);
		BIO_free(bio);
		return -1;
	}
	X509_free(leaf);
	SSL_CTX_clear_chain_certs(ctx);
	X509 *ca;
	while ((ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
			X509_free(ca);
			*error_r = net_tls_error("cannot load certificate chain",
						 name);
			BIO_free(bio);
			return -1;
		}
	}
	/* The loop ends on "no start line" at the end of the text. */
	unsigned long e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
		ERR_clear_error();
	} else if (e != 0) {
		*error_r = net_tls_error("cannot load certificate chain", name);
		BIO_free(bio);
		return -1;
	}
	BIO_free(bio);
	return 0;
}

static int net_tls_load_key(SSL_CTX *ctx, const char *pem, size_t len,
			    const char *name, char **error_r)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL,
						      net_tls_no_passphrase,
						      NULL) : NULL;
	BIO_free(bio);
	if (key == NULL) {
		bool encrypted = memmem(pem, len, "ENCRYPTED", 9) != NULL;
		*error_r = encrypted
			? xasprintf("cannot load private key %s: it is "
				    "encrypted (a key with a passphrase cannot "
				    "be loaded unattended)", name)
			: net_tls_error("cannot load private key", name);
		ERR_clear_error();
		return -1;
	}
	int rc = SSL_CTX_use_PrivateKey(ctx, key);
	EVP_PKEY_free(key);
	if (rc != 1) {
		*error_r = net_tls_error("cannot load private key", name);
		return -1;
	}
	return 0;
}

SSL_CTX *net_tls_ctx_create_pem(const char *cert_pem, size_t cert_len,
				const char *key_pem, size_t key_len,
				const char *cert_name, const char *key_name,
				char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*error_r = net_tls_error("cannot create TLS context", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* OpenSSL 3 refuses client-initiated renegotiation by default. The
	 * server's order of NET_TLS12_CIPHERS wins (testssl.sh rates a
	 * server without one HIGH). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
			    SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_cipher_list(ctx, NET_TLS12_CIPHERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, 4096);
	static const unsigned char sid_ctx[] = "loft";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	if (net_tls_load_chain(ctx, cert_pem, cert_len, cert_name,
			       error_r) < 0 ||
	    net_tls_load_key(ctx, key_pem, key_len, key_name, error_r) < 0)
		goto fail;
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*error_r = net_tls_error("key does not match certificate",
					 key_name);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int net_tls_read_file(const char *path, char **text_r, size_t *len_r,
		      char **error_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		*error_r = xasprintf("cannot read %s: %s", path,
				     strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > NET_TLS_FILE_MAX) {
		*error_r = xasprintf("cannot read %s: not a PEM file (%s)",
				     path, S_ISREG(st.st_mode) ? "too big"
							       : "not a file");
		close(fd);
		return -1;
	}
	char *text = xmalloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	text[got] = '\0';
	*text_r = text;
	*len_r = got;
	return 0;
}

void net_tls_text_free(char **text, size_t len)
{
	if (*text == NULL)
		return;
	OPENSSL_cleanse(*text, len);
	free(*text);
	*text = NULL;
}

SSL_CTX *net_tls_ctx_create(const char *cert, const char *key, char **error_r)
{
	char *c = NULL, *k = NULL;
	size_t clen = 0, klen = 0;
	SSL_CTX *ctx = NULL;
	if (net_tls_read_file(cert, &c, &clen, error_r) == 0 &&
	    net_tls_read_file(key, &k, &klen, error_r) == 0)
		ctx = net_tls_ctx_create_pem(c, clen, k, klen, cert, key,
					     error_r);
	net_tls_text_free(&c, clen);
	net_tls_text_free(&k, klen);
	return ctx;
}

int net_tls_check_pem(const char *cert_pem, size_t cert_len,
		      const char *key_pem, size_t key_len,
		      const char *cert_name, const char *key_name,
		      char **error_r)
{
	SSL_CTX *ctx = net_tls_ctx_create_pem(cert_pem, cert_len, key_pem,
					      key_len, cert_name, key_name,
					      error_r);
	if (ctx == NULL)
		return -1;
	SSL_CTX_free(ctx);
	return 0;
}

int net_tls_set(struct net *net, const char *cert_pem, size_t cert_len,
		const char *key_pem, size_t key_len, const char *cert_name,
		const char *key_name, char **error_r)
{
	SSL_CTX *ctx = net_tls_ctx_create_pem(cert_pem, cert_len, key_pem,
					      key_len, cert_name, key_name,
					      error_r);
	if (ctx == NULL)
		return -1;
	pthread_mutex_lock(&net->tls_mu);
	SSL_CTX *old = net->ssl_ctx;
	net->ssl_ctx = ctx;
	atomic_store(&net->tls_on, true);
	pthread_mutex_unlock(&net->tls_mu);
	/* Sessions made from the old context hold their own reference. */
	SSL_CTX_free(old);
	return 0;
}

SSL *net_tls_new(struct net *net)
{
	pthread_mutex_lock(&net->tls_mu);
	SSL *ssl = net->ssl_ctx != NULL ? SSL_new(net->ssl_ctx) : NULL;
	pthread_mutex_unlock(&net->tls_mu);
	return ssl;
}
