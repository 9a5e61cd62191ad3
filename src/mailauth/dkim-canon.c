/*
 * DKIM canonicalization (RFC 6376 3.4): header fields one at a time, and
 * the body as a stream into a digest, so a message is hashed while it
 * arrives and never held whole in memory. A bare LF counts as a line end
 * (the store and the outbound client both make it CRLF, so signer,
 * verifier and what goes on the wire agree); a bare CR is data.
 */
#include "mailauth-private.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool wsp(char c)
{
	return c == ' ' || c == '\t';
}

void dkim_canon_header(enum dkim_canon c, const struct ma_field *f,
		       struct buf *out)
{
	if (c == DKIM_CANON_SIMPLE) {
		/* as it is, with CRLF line ends */
		for (size_t i = 0; i < f->raw_len; i++) {
			char ch = f->raw[i];
			if (ch == '\n' && (i == 0 || f->raw[i - 1] != '\r'))
				buf_append_char(out, '\r');
			buf_append_char(out, ch);
		}
		if (f->raw_len == 0 || f->raw[f->raw_len - 1] != '\n')
			buf_append_str(out, "\r\n");
		return;
	}
	/* relaxed: lowercase name, unfolded value, WSP runs as one SP,
	 * none at either end of the value */
	for (size_t i = 0; i < f->name_len; i++) {
		char ch = f->name[i];
		buf_append_char(out, (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32)
							       : ch);
	}
	buf_append_char(out, ':');
	bool pending = false, started = false;
	for (size_t i = 0; i < f->value_len; i++) {
		char ch = f->value[i];
		if (ch == '\r' || ch == '\n')
			continue;
		if (wsp(ch)) {
			pending = true;
			continue;
		}
		if (pending && started)
			buf_append_char(out, ' ');
		pending = false;
		started = true;
		buf_append_char(out, ch);
	}
	buf_append_str(out, "\r\n");
}

struct dkim_body {
	enum dkim_canon canon;
	EVP_MD_CTX *md;
	bool has_limit;
	uint64_t limit;
	uint64_t emitted;
	uint64_t empty_lines;     /* held back: they may end the body */
	bool line_content;        /* the current line has content */
	bool pending_wsp;         /* relaxed: WSP seen, not emitted yet */
	bool cr;                  /* a CR waits to see whether LF follows */
	bool any;                 /* anything at all was emitted */
	bool short_body;          /* l= longer than the body */
};

struct dkim_body *dkim_body_create(enum dkim_canon c, bool sha1,
				   bool has_limit, uint64_t limit)
{
	struct dkim_body *b = xcalloc(1, sizeof(*b));

	b->canon = c;
	b->has_limit = has_limit;
	b->limit = limit;
	b->md = EVP_MD_CTX_new();
	if (b->md == NULL ||
	    EVP_DigestInit_ex(b->md, sha1 ? EVP_sha1() : EVP_sha256(), NULL) != 1)
		abort();
	return b;
}

static void emit(struct dkim_body *b, const char *p, size_t n)
{
	if (b->has_limit) {
		if (b->emitted >= b->limit)
			return;
		if (n > b->limit - b->emitted)
			n = (size_t)(b->limit - b->emitted);
	}
	EVP_DigestUpdate(b->md, p, n);
	b->emitted += n;
	b->any = true;
}

/* A content character of the current line. */
static void content(struct dkim_body *b, char ch)
{
	if (!b->line_content) {
		/* the empty lines before were not the end after all */
		for (; b->empty_lines > 0; b->empty_lines--)
			emit(b, "\r\n", 2);
		b->line_content = true;
	}
	if (b->canon == DKIM_CANON_RELAXED && b->pending_wsp)
		emit(b, " ", 1);
	b->pending_wsp = false;
	emit(b, &ch, 1);
}

static void end_line(struct dkim_body *b)
{
	if (b->line_content)
		emit(b, "\r\n", 2);
	else
		b->empty_lines++;
	b->line_content = false;
	b->pending_wsp = false;
}

void dkim_body_feed(struct dkim_body *b, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = data[i];
		if (b->cr) {
			b->cr = false;
			if (ch == '\n') {
				end_line(b);
				continue;
			}
			content(b, '\r');   /* a bare CR is data */
		}
		if (ch == '\r') {
			b->cr = true;
		} else if (ch == '\n') {
			end_line(b);
		} else if (b->canon == DKIM_CANON_RELAXED && wsp(ch)) {
			b->pending_wsp = true;
		} else {
			content(b, ch);
		}
	}
}

int dkim_body_final(struct dkim_body *b, uint8_t *hash_r, size_t *len_r)
{
	unsigned n = 0;

	if (b->cr) {
		b->cr = false;
		content(b, '\r');
	}
	if (b->line_content)
		end_line(b);    /* RFC 6376 3.4.3/3.4.4: a CRLF is added */
	/* trailing empty lines are ignored; an empty body is one CRLF in
	 * simple, nothing in relaxed */
	if (!b->any && b->canon == DKIM_CANON_SIMPLE)
		emit(b, "\r\n", 2);
	if (b->has_limit && b->emitted < b->limit)
		b->short_body = true;
	EVP_DigestFinal_ex(b->md, hash_r, &n);
	*len_r = n;
	return b->short_body ? -1 : 0;
}

void dkim_body_free(struct dkim_body **bp)
{
	struct dkim_body *b = *bp;

	if (b == NULL)
		return;
	EVP_MD_CTX_free(b->md);
	free(b);
	*bp = NULL;
}

/* The signature field with its b= value emptied (RFC 6376 3.7). */
static void strip_b(const char *raw, size_t len, struct buf *out)
{
	const char *colon = memchr(raw, ':', len);
	size_t i = colon != NULL ? (size_t)(colon - raw) + 1 : len;

	buf_append(out, raw, i);
	while (i < len) {
		size_t a = i, eq, end;
		while (i < len && raw[i] != ';')
			i++;
		end = i;
		/* the tag name of [a, end) */
		size_t k = a;
		while (k < end && (raw[k] == ' ' || raw[k] == '\t' ||
				   raw[k] == '\r' || raw[k] == '\n'))
			k++;
		size_t name = k;
		while (k < end && raw[k] != '=' && raw[k] != ' ' &&
		       raw[k] != '\t' && raw[k] != '\r' && raw[k] != '\n')
			k++;
		bool is_b = k - name == 1 && raw[name] == 'b';
		eq = k;
		while (eq < end && raw[eq] != '=')
			eq++;
		if (is_b && eq < end) {
			buf_append(out, raw + a, eq + 1 - a);
			/* a line end after the last tag stays */
			if (end == len) {
				size_t t = end;
				while (t > eq + 1 && (raw[t - 1] == '\r' ||
						      raw[t - 1] == '\n'))
					t--;
				buf_append(out, raw + t, end - t);
			}
		} else {
			buf_append(out, raw + a, end - a);
		}
		if (i < len) {
			buf_append_char(out, ';');
			i++;
		}
	}
}

void dkim_signed_data(const struct ma_field *f, size_t n,
		      const char *const *headers, size_t count,
		      enum dkim_canon c, const char *sig_field,
		      size_t sig_len, struct buf *out)
{
	bool *used = xcalloc(n ? n : 1, sizeof(bool));

	/* each name of h= takes its last unused instance (RFC 6376 5.4.2);
	 * a name with none left adds nothing */
	for (size_t h = 0; h < count; h++) {
		size_t nl = strlen(headers[h]);
		for (size_t i = n; i-- > 0;) {
			if (used[i] || f[i].name_len != nl ||
			    strncasecmp(f[i].name, headers[h], nl) != 0)
				continue;
			used[i] = true;
			dkim_canon_header(c, &f[i], out);
			break;
		}
	}
	free(used);
	/* the signature field itself, b= empty, no CRLF after it */
	struct buf stripped;
	struct ma_field *sf = NULL;
	size_t shlen;
	buf_init(&stripped, 0);
	strip_b(sig_field, sig_len, &stripped);
	if (ma_header_split(stripped.data ? stripped.data : "", stripped.len,
			    &sf, &shlen) == 1) {
		size_t before = out->len;
		dkim_canon_header(c, &sf[0], out);
		if (out->len >= before + 2) {
			out->len -= 2;
			out->data[out->len] = '\0';
		}
	}
	free(sf);
	buf_free(&stripped);
}
