/*
 * The search text as stored: the folded decoded text of a message
 * (header fields, body) is kept zlib-compressed, so the search index
 * costs a fraction of the mail it covers (the text itself was most of
 * it: a text/plain message's text is about its size). A row holds either
 * TEXT (rows written before compression, and short texts) or a BLOB:
 * 4 bytes of uncompressed length (little endian), then a zlib stream
 * (RFC 1950). The streams are made and read with libdeflate, which does
 * whole buffers (all this needs) at about twice zlib's speed and writes
 * the same format (rows written with zlib before read the same).
 * Search decompresses only the candidates the trigram index proposes.
 */
#include "sq-private.h"

#include <libdeflate.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Shorter texts are not worth a zlib stream. */
#define TEXT_RAW_MAX 64

/* Level 1: it runs on the delivery path (the body's text, once per
 * body). zlib's level 1 was 14-21 % of loftd's CPU in delivery profiles;
 * libdeflate's level 1 compresses a little better at about twice the
 * speed. */
#define TEXT_LEVEL 1

/* A compressor and a decompressor per thread, made at first use (a
 * compressor is a few hundred KiB of tables: not worth making per text,
 * which zlib's compress2 did) and freed when the thread ends. */
struct text_coders {
	struct libdeflate_compressor *c;
	struct libdeflate_decompressor *d;
};

static pthread_key_t coders_key;
static pthread_once_t coders_once = PTHREAD_ONCE_INIT;

static void coders_free(void *p)
{
	struct text_coders *k = p;
	if (k->c != NULL)
		libdeflate_free_compressor(k->c);
	if (k->d != NULL)
		libdeflate_free_decompressor(k->d);
	free(k);
}

static void coders_key_make(void)
{
	if (pthread_key_create(&coders_key, coders_free) != 0)
		abort();
}

static struct text_coders *coders(void)
{
	pthread_once(&coders_once, coders_key_make);
	struct text_coders *k = pthread_getspecific(coders_key);
	if (k == NULL) {
		k = xcalloc(1, sizeof(*k));
		if (pthread_setspecific(coders_key, k) != 0)
			abort();
	}
	return k;
}

/* Room for n bytes (and a NUL) at b->data, len 0. */
static void text_room(struct buf *b, size_t n)
{
	b->len = 0;
	if (b->cap < n + 1) {
		b->data = xrealloc(b->data, n + 1);
		b->cap = n + 1;
	}
}

int sq_text_encode(const char *text, size_t len, struct buf *out)
{
	if (len <= TEXT_RAW_MAX || len > UINT32_MAX)
		return -1;
	struct text_coders *k = coders();
	if (k->c == NULL && (k->c = libdeflate_alloc_compressor(TEXT_LEVEL)) ==
				    NULL)
		return -1;
	/* only worth it when smaller than the text: room for len - 1 */
	text_room(out, 4 + len - 1);
	unsigned char *p = (unsigned char *)out->data;
	p[0] = (unsigned char)len;
	p[1] = (unsigned char)(len >> 8);
	p[2] = (unsigned char)(len >> 16);
	p[3] = (unsigned char)(len >> 24);
	size_t clen = libdeflate_zlib_compress(k->c, text, len, p + 4, len - 1);
	if (clen == 0)
		return -1;
	out->len = 4 + clen;
	return 0;
}

void sq_text_bind(sqlite3_stmt *st, int col, const char *text, size_t len,
		  struct buf *tmp)
{
	if (text == NULL)
		text = "";
	if (sq_text_encode(text, len, tmp) < 0)
		sqlite3_bind_text(st, col, text, (int)len, SQLITE_STATIC);
	else
		sqlite3_bind_blob(st, col, tmp->data, (int)tmp->len,
				  SQLITE_STATIC);
}

int sq_text_decode(const void *data, size_t n, struct buf *out)
{
	const unsigned char *p = data;
	if (p == NULL || n < 4)
		return -1;
	size_t len = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
		     (size_t)p[3] << 24;
	/* a damaged length must not make us allocate gigabytes: DEFLATE
	 * expands at most about 1032 to 1 */
	if (len / 1032 > n)
		return -1;
	struct text_coders *k = coders();
	if (k->d == NULL && (k->d = libdeflate_alloc_decompressor()) == NULL)
		return -1;
	text_room(out, len);
	size_t got = 0;
	/* exactly len bytes, and the whole stream (a longer one does not
	 * fit: INSUFFICIENT_SPACE) with its Adler-32 checked */
	if (libdeflate_zlib_decompress(k->d, p + 4, n - 4, out->data, len,
				       &got) != LIBDEFLATE_SUCCESS ||
	    got != len)
		return -1;
	out->len = len;
	out->data[len] = '\0';
	return 0;
}

const char *sq_text_column(sqlite3_stmt *st, int col, struct buf *tmp,
			   size_t *len_r)
{
	*len_r = 0;
	if (sqlite3_column_type(st, col) != SQLITE_BLOB) {
		const char *t = (const char *)sqlite3_column_text(st, col);
		*len_r = (size_t)sqlite3_column_bytes(st, col);
		return t != NULL ? t : "";
	}
	/* damaged: the caller treats it as no text */
	if (sq_text_decode(sqlite3_column_blob(st, col),
			   (size_t)sqlite3_column_bytes(st, col), tmp) < 0)
		return NULL;
	*len_r = tmp->len;
	return tmp->data;
}

int sq_text_insert(struct sq_conn *c, int64_t id, const char *hdr,
		   size_t hdr_len, const char *body, size_t body_len,
		   const struct buf *body_enc)
{
	sqlite3_stmt *st = sq_stmt(c, "INSERT INTO text (id, hdr, body)"
				      " VALUES (?, ?, ?)");
	if (st == NULL)
		return -1;
	struct buf h, b;
	buf_init(&h, 0);
	buf_init(&b, 0);
	sqlite3_bind_int64(st, 1, id);
	sq_text_bind(st, 2, hdr, hdr_len, &h);
	if (body_enc != NULL && body_enc->len > 0)
		sqlite3_bind_blob(st, 3, body_enc->data, (int)body_enc->len,
				  SQLITE_STATIC);
	else
		sq_text_bind(st, 3, body, body_len, &b);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	buf_free(&h);
	buf_free(&b);
	return rc == SQLITE_DONE ? 0 : -1;
}
