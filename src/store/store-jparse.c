/*
 * Readings of the cached analysis both backends' JMAP code shares
 * (store-private.h "logic both backends share"): whether a BODYSTRUCTURE
 * has an attachment (Email hasAttachment), and whether a header field of
 * the folded header text holds a needle (Email/query's header filters);
 * what an Email/set update makes of a copy's flags and keywords and of
 * an Email's mailboxes; an Email's merged keywords as a list.
 */
#include "store-private.h"

#include "buf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- hasAttachment ------------------------------------------------ */

/* A small reader of the cached IMAP BODYSTRUCTURE: enough to tell
 * whether a client should offer a part for download (RFC 8621 4.1.4
 * hasAttachment): a leaf with Content-Disposition attachment, or one that
 * is neither text nor inline (a PDF, a forwarded message, an image with
 * no disposition and a name). */
struct bs {
	const char *p, *end;
};

static void bs_ws(struct bs *b)
{
	while (b->p < b->end && *b->p == ' ')
		b->p++;
}

/* Skips one item (string, literal, atom, NIL, number or list); fills
 * s/len for a string or atom. Returns false at the end or on garbage. */
static bool bs_item(struct bs *b, const char **s, size_t *len, int depth)
{
	bs_ws(b);
	if (b->p >= b->end || depth > 200)
		return false;
	*s = NULL;
	*len = 0;
	char c = *b->p;
	if (c == '"') {
		const char *start = ++b->p;
		while (b->p < b->end && *b->p != '"') {
			if (*b->p == '\\' && b->p + 1 < b->end)
				b->p++;
			b->p++;
		}
		*s = start;
		*len = (size_t)(b->p - start);
		b->p += b->p < b->end;
		return true;
	}
	if (c == '{') {
		unsigned long n = strtoul(b->p + 1, NULL, 10);
		const char *nl = memchr(b->p, '\n', (size_t)(b->end - b->p));
		if (nl == NULL || n > (size_t)(b->end - nl - 1))
			return false;
		*s = nl + 1;
		*len = n;
		b->p = nl + 1 + n;
		return true;
	}
	if (c == '(') {
		b->p++;
		for (;;) {
			bs_ws(b);
			if (b->p >= b->end)
				return false;
			if (*b->p == ')') {
				b->p++;
				return true;
			}
			const char *x;
			size_t xl;
			if (!bs_item(b, &x, &xl, depth + 1))
				return false;
		}
	}
	if (c == ')')
		return false;
	const char *start = b->p;
	while (b->p < b->end && *b->p != ' ' && *b->p != '(' && *b->p != ')')
		b->p++;
	*s = start;
	*len = (size_t)(b->p - start);
	return true;
}

static bool ieq(const char *s, size_t len, const char *lit)
{
	return s != NULL && strlen(lit) == len && strncasecmp(s, lit, len) == 0;
}

/* Whether the list at b->p (a params list or NIL) has a "name" or
 * "filename" parameter. Consumes it. */
static bool bs_params_named(struct bs *b)
{
	bs_ws(b);
	if (b->p >= b->end || *b->p != '(') {
		const char *s;
		size_t l;
		bs_item(b, &s, &l, 0);
		return false;
	}
	b->p++;
	bool named = false;
	for (;;) {
		bs_ws(b);
		if (b->p >= b->end)
			return named;
		if (*b->p == ')') {
			b->p++;
			return named;
		}
		const char *k, *v;
		size_t kl, vl;
		if (!bs_item(b, &k, &kl, 1) || !bs_item(b, &v, &vl, 1))
			return named;
		named |= ieq(k, kl, "name") || ieq(k, kl, "filename");
	}
}

/* Reads a disposition ("attachment" (params)) or NIL: 1 attachment,
 * 2 inline, 0 none; *named when it carries a filename. */
static int bs_disposition(struct bs *b, bool *named)
{
	bs_ws(b);
	if (b->p >= b->end || *b->p != '(') {
		const char *s;
		size_t l;
		bs_item(b, &s, &l, 0);
		return 0;
	}
	b->p++;
	const char *s;
	size_t l;
	int r = 0;
	if (bs_item(b, &s, &l, 1))
		r = ieq(s, l, "attachment") ? 1 : ieq(s, l, "inline") ? 2 : 0;
	*named |= bs_params_named(b);
	for (;;) {
		bs_ws(b);
		if (b->p >= b->end || *b->p == ')') {
			b->p += b->p < b->end;
			return r;
		}
		if (!bs_item(b, &s, &l, 1))
			return r;
	}
}

/* One body (at '('): sets *att when a leaf is an attachment. */
static bool bs_body(struct bs *b, bool *att, int depth)
{
	bs_ws(b);
	if (b->p >= b->end || *b->p != '(' || depth > 100)
		return false;
	b->p++;
	bs_ws(b);
	const char *s;
	size_t l;
	if (b->p < b->end && *b->p == '(') {
		/* multipart: bodies, then subtype and extensions */
		while (b->p < b->end && *b->p == '(') {
			if (!bs_body(b, att, depth + 1))
				return false;
			bs_ws(b);
		}
		while (b->p < b->end && *b->p != ')')
			if (!bs_item(b, &s, &l, depth + 1))
				return false;
		b->p += b->p < b->end;
		return true;
	}
	const char *type, *sub;
	size_t tl, sl;
	if (!bs_item(b, &type, &tl, depth) || !bs_item(b, &sub, &sl, depth))
		return false;
	bool named = bs_params_named(b);
	/* id, description, encoding, size */
	for (int i = 0; i < 4; i++)
		if (!bs_item(b, &s, &l, depth))
			return false;
	bool text = ieq(type, tl, "text");
	bool message = ieq(type, tl, "message") &&
		       (ieq(sub, sl, "rfc822") || ieq(sub, sl, "global"));
	if (text) {
		if (!bs_item(b, &s, &l, depth))   /* lines */
			return false;
	} else if (message) {
		/* envelope, body, lines */
		if (!bs_item(b, &s, &l, depth))
			return false;
		bool inner = false;
		if (!bs_body(b, &inner, depth + 1) ||
		    !bs_item(b, &s, &l, depth))
			return false;
	}
	int disp = 0;
	bs_ws(b);
	if (b->p < b->end && *b->p != ')') {
		bs_item(b, &s, &l, depth);   /* md5 */
		bs_ws(b);
		if (b->p < b->end && *b->p != ')')
			disp = bs_disposition(b, &named);
	}
	while (b->p < b->end && *b->p != ')')
		if (!bs_item(b, &s, &l, depth))
			return false;
	b->p += b->p < b->end;
	bool readable = text && (ieq(sub, sl, "plain") || ieq(sub, sl, "html"));
	if (disp == 1 || message || (disp != 2 && !readable && named) ||
	    (disp == 0 && !text && !ieq(type, tl, "multipart") &&
	     !ieq(type, tl, "image")))
		*att = true;
	return true;
}

bool store_bodystructure_has_attachment(const char *bs, size_t len)
{
	struct bs b = {bs, bs + len};
	bool att = false;
	if (bs != NULL)
		bs_body(&b, &att, 0);
	return att;
}

/* Whether the header text (folded "name: value\n" lines) has needle in
 * the value of a field called field (folded, or any when NULL). */
bool store_header_has(const char *t, size_t tlen, const char *field,
		      const char *needle, size_t nlen)
{
	if (field == NULL)
		return memmem(t, tlen, needle, nlen) != NULL;
	size_t flen = strlen(field);
	const char *p = t, *end = t + tlen;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;
		if ((size_t)(le - p) > flen + 1 && memcmp(p, field, flen) == 0 &&
		    p[flen] == ':') {
			const char *v = p + flen + 1;
			if (memmem(v, (size_t)(le - v), needle, nlen) != NULL)
				return true;
		}
		p = le + 1;
	}
	return false;
}

/* ---- Email/set: a copy's flags and keywords after an update ---- */

static bool kw_has(const char *const *v, size_t n, const char *k, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(v[i]) == len && strncasecmp(v[i], k, len) == 0)
			return true;
	return false;
}

static bool list_has(const struct buf *b, const char *k, size_t len)
{
	for (const char *p = b->data; p != NULL && p < b->data + b->len;) {
		const char *e = memchr(p, ' ', (size_t)(b->data + b->len - p));
		size_t l = e ? (size_t)(e - p) : (size_t)(b->data + b->len - p);
		if (l == len && strncasecmp(p, k, len) == 0)
			return true;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return false;
}

static void list_add(struct buf *b, const char *k, size_t len)
{
	if (list_has(b, k, len))
		return;
	if (b->len > 0)
		buf_append_char(b, ' ');
	buf_append(b, k, len);
}

char *store_email_keywords_update(const char *old,
				  const struct store_email_update *up)
{
	struct buf b;
	buf_init(&b, 0);
	if (!up->replace_keywords && old != NULL) {
		for (const char *p = old; *p;) {
			const char *e = strchr(p, ' ');
			size_t len = e ? (size_t)(e - p) : strlen(p);
			if (!kw_has(up->keywords_remove, up->keyword_remove_count,
				    p, len))
				list_add(&b, p, len);
			p += len + (e != NULL);
		}
	}
	for (size_t i = 0; i < up->keyword_count; i++)
		list_add(&b, up->keywords[i], strlen(up->keywords[i]));
	return b.len > 0 ? buf_steal(&b, NULL) : (buf_free(&b), NULL);
}

unsigned store_email_flags_update(unsigned old,
				  const struct store_email_update *up)
{
	unsigned keep = old & STORE_FLAG_DELETED;
	unsigned f = up->replace_keywords ? up->flags
					  : (old | up->flags) & ~up->flags_remove;
	return (f & 0x17 & ~STORE_FLAG_DELETED) | keep;
}

static bool u32_in(const uint32_t *v, size_t n, uint32_t x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

uint32_t *store_email_mailboxes_want(const uint32_t *cur, size_t ncur,
				     const struct store_email_update *up,
				     size_t *count_r)
{
	uint32_t *want = xcalloc(ncur + up->mailbox_count + 1,
				 sizeof(uint32_t));
	size_t nwant = 0;
	if (up->replace_mailboxes) {
		for (size_t i = 0; i < up->mailbox_count; i++)
			if (!u32_in(want, nwant, up->mailboxes[i]))
				want[nwant++] = up->mailboxes[i];
	} else {
		for (size_t i = 0; i < ncur; i++)
			if (!u32_in(up->mailboxes_remove,
				    up->mailbox_remove_count, cur[i]))
				want[nwant++] = cur[i];
		for (size_t i = 0; i < up->mailbox_count; i++)
			if (!u32_in(want, nwant, up->mailboxes[i]) &&
			    !u32_in(up->mailboxes_remove,
				    up->mailbox_remove_count, up->mailboxes[i]))
				want[nwant++] = up->mailboxes[i];
	}
	*count_r = nwant;
	return want;
}

void store_email_keywords_split(struct store_email *e, const char *kw)
{
	if (kw == NULL)
		return;
	char *copy = xstrdup(kw), *save = NULL;
	for (char *k = strtok_r(copy, " ", &save); k != NULL;
	     k = strtok_r(NULL, " ", &save)) {
		bool dup = false;
		for (size_t i = 0; i < e->keyword_count && !dup; i++)
			dup = strcasecmp(e->keywords[i], k) == 0;
		if (dup)
			continue;
		e->keywords = xrealloc(e->keywords, (e->keyword_count + 1) *
							    sizeof(char *));
		e->keywords[e->keyword_count++] = xstrdup(k);
	}
	free(copy);
}
