/*
 * The TLS server context shared by every listener and STARTTLS: TLS 1.2
 * and later only, forward-secret AEAD ciphers for TLS 1.2 (Mozilla's
 * "intermediate" profile; TLS 1.3 suites are OpenSSL's defaults), no TLS
 * compression, renegotiation off. Buffers of idle connections are released
 * (SSL_MODE_RELEASE_BUFFERS) so an idle TLS session stays small.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "net-private.h"

#define NET_TLS12_CIPHERS                                               \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"    \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"    \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"    \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

static char *net_tls_error(const char *what, const char *path)
{
	unsigned long e = ERR_peek_last_error();
	char msg[256] = "";
	if (e != 0)
		ERR_error_string_n(e, msg, sizeof(msg));
	ERR_clear_error();
	return xasprintf("%s %s: %s", what, path, e ? msg : "failed");
}

SSL_CTX *net_tls_ctx_create(const char *cert, const char *key, char **error_r)
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
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		*error_r = net_tls_error("cannot load certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		*error_r = net_tls_error("cannot load private key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*error_r = net_tls_error("key does not match certificate", key);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
