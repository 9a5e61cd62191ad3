/*
 * Search text and preview: the decoded UTF-8 a user would read. Header
 * fields are decoded (RFC 2047); text parts have their transfer encoding
 * undone, are converted from their charset and, for HTML, reduced to
 * text. Bodies are processed in slices, so memory stays bounded however
 * large a part is; attachments that are not text are left out.
 */
#include "mail-private.h"

#include <errno.h>
#include <iconv.h>
#include <string.h>
#include <strings.h>

#define SLICE_SIZE (256 * 1024)
#define PREVIEW_CHARS 200

/* ---- a streaming charset converter --------------------------------- */

struct conv {
	iconv_t cd;        /* (iconv_t)-1: UTF-8 check + repair */
	char carry[16];    /* an incomplete sequence from the last piece */
	size_t carry_len;
};

static void conv_init(struct conv *c, const char *charset)
{
	c->carry_len = 0;
	c->cd = (iconv_t)-1;
	if (charset == NULL || *charset == '\0' ||
	    strcasecmp(charset, "utf-8") == 0 || strcasecmp(charset, "utf8") == 0 ||
	    strcasecmp(charset, "us-ascii") == 0)
		return;
	const char *name = mail_charset_iconv_name(charset);
	if (name != NULL)
		c->cd = mail_iconv_get(name);   /* -1: unknown, repair instead */
}

static void conv_deinit(struct conv *c)
{
	c->cd = (iconv_t)-1;   /* cached, not ours to close */
}

/* Converts s; at the end (last) the carried bytes are flushed. */
static void conv_put(struct conv *c, struct buf *out, const char *s,
		     size_t len, bool last)
{
	struct buf in;
	buf_init(&in, 0);
	mail_buf_put(&in, c->carry, c->carry_len);
	mail_buf_put(&in, s, len);
	c->carry_len = 0;
	const char *p = in.data ? in.data : "";
	size_t n = in.len;
	if (c->cd == (iconv_t)-1) {
		/* keep an incomplete UTF-8 sequence at the end for later */
		size_t keep = 0;
		if (!last) {
			for (size_t k = 1; k <= 3 && k <= n; k++) {
				unsigned char b = (unsigned char)p[n - k];
				if ((b & 0xC0) == 0x80)
					continue;
				if (b >= 0xC0) {
					size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
					if (need > k)
						keep = k;
				}
				break;
			}
		}
		mail_utf8_append_raw(out, p, n - keep);
		memcpy(c->carry, p + n - keep, keep);
		c->carry_len = keep;
		buf_free(&in);
		return;
	}
	char tmp[4096];
	char *ip = (char *)p;
	size_t ileft = n;
	size_t start = out->len;
	while (ileft > 0) {
		char *o = tmp;
		size_t oleft = sizeof(tmp);
		size_t r = iconv(c->cd, &ip, &ileft, &o, &oleft);
		mail_buf_put(out, tmp, sizeof(tmp) - oleft);
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG)
			continue;
		if (errno == EINVAL && !last && ileft < sizeof(c->carry)) {
			memcpy(c->carry, ip, ileft);
			c->carry_len = ileft;
			break;
		}
		mail_utf8_put(out, 0xFFFD);
		ip++;
		ileft--;
	}
	mail_utf8_sanitize(out, start);
	buf_free(&in);
}

/* ---- HTML to text --------------------------------------------------- */

struct html {
	int state;          /* 0 text, 1 tag, 2 entity, 3 comment */
	char name[16];      /* tag name being read */
	size_t name_len;
	bool name_done, closing;
	int skip;           /* inside <script>/<style> */
	char ent[12];
	size_t ent_len;
	char dash[3];       /* last chars inside a comment */
};

/* HTML 4 Latin-1 entities, U+00A0..U+00FF in order. */
static const char *const latin1_entities[96] = {
	"nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect",
	"uml", "copy", "ordf", "laquo", "not", "shy", "reg", "macr", "deg",
	"plusmn", "sup2", "sup3", "acute", "micro", "para", "middot", "cedil",
	"sup1", "ordm", "raquo", "frac14", "frac12", "frac34", "iquest",
	"Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig",
	"Ccedil", "Egrave", "Eacute", "Ecirc", "Euml", "Igrave", "Iacute",
	"Icirc", "Iuml", "ETH", "Ntilde", "Ograve", "Oacute", "Ocirc",
	"Otilde", "Ouml", "times", "Oslash", "Ugrave", "Uacute", "Ucirc",
	"Uuml", "Yacute", "THORN", "szlig", "agrave", "aacute", "acirc",
	"atilde", "auml", "aring", "aelig", "ccedil", "egrave", "eacute",
	"ecirc", "euml", "igrave", "iacute", "icirc", "iuml", "eth", "ntilde",
	"ograve", "oacute", "ocirc", "otilde", "ouml", "divide", "oslash",
	"ugrave", "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml",
};

static void html_entity(struct buf *out, const char *e, size_t n)
{
	static const struct { const char *name; uint32_t cp; } ents[] = {
		{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'},
		{"apos", '\''}, {"euro", 0x20AC}, {"hellip", 0x2026},
		{"mdash", 0x2014}, {"ndash", 0x2013}, {"lsquo", 0x2018},
		{"rsquo", 0x2019}, {"ldquo", 0x201C}, {"rdquo", 0x201D},
		{"bull", 0x2022}, {"trade", 0x2122}, {"zwnj", 0x200C},
		{"zwj", 0x200D}, {"thinsp", 0x2009}, {"ensp", 0x2002},
		{"emsp", 0x2003}, {"oelig", 0x0153}, {"OElig", 0x0152},
	};
	if (n > 1 && e[0] == '#') {
		uint32_t cp = 0;
		bool hex = e[1] == 'x' || e[1] == 'X';
		for (size_t i = hex ? 2 : 1; i < n; i++) {
			char c = e[i];
			int v = (c >= '0' && c <= '9') ? c - '0'
				: hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
				: hex && c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
			if (v < 0 || cp > 0x10FFFF)
				break;
			cp = cp * (hex ? 16 : 10) + (uint32_t)v;
		}
		mail_utf8_put(out, cp == 0 ? 0xFFFD : cp);
		return;
	}
	for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
		if (strlen(ents[i].name) == n && strncmp(ents[i].name, e, n) == 0) {
			mail_utf8_put(out, ents[i].cp);
			return;
		}
	}
	for (uint32_t i = 0; i < 96; i++) {
		if (strlen(latin1_entities[i]) == n &&
		    strncmp(latin1_entities[i], e, n) == 0) {
			/* a no-break space is a space to search and preview */
			mail_utf8_put(out, i == 0 ? ' ' : 0xA0 + i);
			return;
		}
	}
	mail_buf_putc(out, '&');
	mail_buf_put(out, e, n);
	mail_buf_putc(out, ';');
}

static bool block_tag(const char *n)
{
	static const char *const tags[] = {"br", "p", "div", "tr", "li", "h1",
		"h2", "h3", "h4", "h5", "h6", "table", "blockquote", "hr", "td",
		"th", "ul", "ol", "pre", "title"};
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
		if (strcasecmp(n, tags[i]) == 0)
			return true;
	return false;
}

static void html_tag_end(struct html *h, struct buf *out)
{
	h->name[h->name_len] = '\0';
	if (strcasecmp(h->name, "script") == 0 || strcasecmp(h->name, "style") == 0)
		h->skip = h->closing ? 0 : 1;
	else if (block_tag(h->name) && h->skip == 0)
		mail_buf_putc(out, '\n');
}

static void html_put(struct html *h, struct buf *out, const char *s, size_t len)
{
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		switch (h->state) {
		case 0:
			if (c == '<' || c == '&') {
				if (h->skip == 0)
					mail_buf_put(out, s + run, i - run);
				h->state = c == '<' ? 1 : 2;
				h->name_len = 0;
				h->name_done = false;
				h->closing = false;
				h->ent_len = 0;
			}
			break;
		case 1:
			if (c == '>') {
				html_tag_end(h, out);
				h->state = 0;
				run = i + 1;
			} else if (!h->name_done) {
				if (c == '/' && h->name_len == 0) {
					h->closing = true;
				} else if (c == '!' && h->name_len == 0) {
					h->state = 3;
					memset(h->dash, 0, sizeof(h->dash));
				} else if (mail_is_lwsp(c) || c == '/') {
					h->name_done = true;
				} else if (h->name_len < sizeof(h->name) - 1) {
					h->name[h->name_len++] = c;
				}
			}
			break;
		case 2:
			if (c == ';' || h->ent_len >= sizeof(h->ent) ||
			    mail_is_lwsp(c) || c == '<' || c == '&') {
				if (c == ';') {
					if (h->skip == 0)
						html_entity(out, h->ent, h->ent_len);
					run = i + 1;
				} else {
					if (h->skip == 0) {
						mail_buf_putc(out, '&');
						mail_buf_put(out, h->ent, h->ent_len);
					}
					run = i;
					i--;   /* look at c again as text */
				}
				h->state = 0;
			} else {
				h->ent[h->ent_len++] = c;
			}
			break;
		case 3:
			/* <!-- ... --> or <!DOCTYPE ...> */
			if (c == '>' && (h->dash[1] == '-' || h->dash[0] != '-')) {
				h->state = 0;
				run = i + 1;
			}
			h->dash[1] = h->dash[0];
			h->dash[0] = c;
			break;
		}
	}
	if (h->state == 0 && h->skip == 0)
		mail_buf_put(out, s + run, len - run);
}

/* ---- collection ------------------------------------------------------ */

struct collector {
	const struct mail_analyze_options *opt;
	struct mail_result *r;
	struct buf header, body, preview;
	size_t body_max;
	bool body_full;
	size_t preview_chars;
	bool preview_done, preview_space;
	int preview_part;   /* part index feeding the preview, -1 none */
	bool quiet;         /* preview only: no search text wanted */
};

static void emit(struct collector *c, enum mail_text_kind kind,
		 const char *name, const char *text, size_t len)
{
	/* a header field with an empty value still has its name, which
	 * TEXT finds (as in the message) */
	if ((len == 0 && kind != MAIL_TEXT_HEADER) || c->quiet)
		return;
	if (c->opt->text_cb != NULL) {
		c->opt->text_cb(c->opt->text_ctx, kind, name, text, len);
		return;
	}
	if (kind == MAIL_TEXT_HEADER) {
		mail_buf_puts(&c->header, name);
		mail_buf_puts(&c->header, ": ");
		mail_buf_put(&c->header, text, len);
		mail_buf_putc(&c->header, '\n');
		return;
	}
	if (c->body_full)
		return;
	if (c->body.len + len > c->body_max) {
		len = c->body_max - c->body.len;
		/* do not cut a UTF-8 sequence */
		while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
			len--;
		c->body_full = true;
	}
	mail_buf_put(&c->body, text, len);
}

/* In place: CRLF becomes LF, other C0 controls (but TAB) and DEL
 * become spaces, so search text is plain lines of words. */
static void clean_controls(struct buf *b)
{
	size_t o = 0;
	for (size_t i = 0; i < b->len; i++) {
		unsigned char ch = (unsigned char)b->data[i];
		if (ch == '\r' && i + 1 < b->len && b->data[i + 1] == '\n')
			continue;
		if ((ch < 0x20 && ch != '\t' && ch != '\n') || ch == 0x7F)
			ch = ' ';
		b->data[o++] = (char)ch;
	}
	b->len = o;
	if (b->data != NULL)
		b->data[o] = '\0';
}

static void preview_add(struct collector *c, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len && !c->preview_done;) {
		if (p[i] <= ' ') {
			c->preview_space = c->preview.len > 0;
			i++;
			continue;
		}
		size_t n = mail_utf8_seq_len(p + i, len - i);
		if (n == 0)
			n = 1;
		if (c->preview_space) {
			mail_buf_putc(&c->preview, ' ');
			c->preview_space = false;
			if (++c->preview_chars >= PREVIEW_CHARS) {
				c->preview_done = true;
				break;
			}
		}
		mail_buf_put(&c->preview, s + i, n);
		i += n;
		if (++c->preview_chars >= PREVIEW_CHARS)
			c->preview_done = true;
	}
}

static void text_headers(struct collector *c, const char *hdr, size_t len,
			 bool as_body)
{
	struct mail_header_iter it;
	struct slice n, v;
	struct buf dec, name;
	buf_init(&dec, 0);
	buf_init(&name, 0);
	mail_header_iter_init(&it, hdr, len);
	while (mail_header_iter_next(&it, &n, &v) > 0) {
		buf_reset(&dec);
		buf_reset(&name);
		mail_buf_put(&name, n.ptr, n.len);
		mail_header_decode(&dec, v);
		if (dec.len == 0 && as_body)
			continue;
		clean_controls(&dec);
		if (as_body) {
			mail_buf_puts(&dec, "\n");
			emit(c, MAIL_TEXT_BODY, NULL, dec.data, dec.len);
		} else {
			emit(c, MAIL_TEXT_HEADER, name.data, dec.data, dec.len);
		}
	}
	buf_free(&dec);
	buf_free(&name);
}

static bool is_attachment(const struct mpart *p)
{
	if (p->cdisp.ptr == NULL)
		return false;
	size_t i = 0;
	while (i < p->cdisp.len && mail_is_lwsp(p->cdisp.ptr[i]))
		i++;
	return p->cdisp.len - i >= 10 &&
	       strncasecmp(p->cdisp.ptr + i, "attachment", 10) == 0;
}

enum cte_kind { K_IDENTITY, K_B64, K_QP };

static enum cte_kind part_cte(const struct mpart *p)
{
	struct slice v;
	if (!mpart_cte(p, &v))
		return K_IDENTITY;
	if (mail_slice_eq_ci(v, "base64"))
		return K_B64;
	if (mail_slice_eq_ci(v, "quoted-printable"))
		return K_QP;
	return K_IDENTITY;
}

/* Decodes a text part's body in slices and emits it. */
static void text_body(struct collector *c, const struct mparse *mp,
		      uint32_t idx, bool html, bool for_preview)
{
	const struct mpart *p = &mp->parts[idx];
	struct mail_params params = {0};
	const char *charset = NULL;
	if (p->ctype.ptr != NULL && (p->flags & MP_IS_MIME)) {
		mail_params_parse(p->ctype.ptr, p->ctype.len, &params);
		charset = mail_params_get(&params, "charset");
	}
	struct conv cv;
	conv_init(&cv, charset);
	struct html h = {0};
	struct mail_b64 b64 = {0};
	enum cte_kind cte = part_cte(p);
	struct buf raw, utf8, text;
	buf_init(&raw, 0);
	buf_init(&utf8, 0);
	buf_init(&text, 0);
	const char *s = mp->data + p->body_off, *end = mp->data + p->body_end;
	while (s < end) {
		const char *e = s + SLICE_SIZE < end ? s + SLICE_SIZE : end;
		if (e < end) {
			/* cut at a line end, so QP lines stay whole */
			const char *lf = memrchr(s, '\n', (size_t)(e - s));
			if (lf != NULL)
				e = lf + 1;
		}
		buf_reset(&raw);
		buf_reset(&utf8);
		buf_reset(&text);
		if (cte == K_B64)
			mail_b64_decode(&b64, &raw, s, (size_t)(e - s));
		else if (cte == K_QP)
			mail_qp_decode(&raw, s, (size_t)(e - s), false);
		else
			mail_buf_put(&raw, s, (size_t)(e - s));
		conv_put(&cv, &utf8, raw.data ? raw.data : "", raw.len, e == end);
		struct buf *out = &utf8;
		if (html) {
			html_put(&h, &text, utf8.data ? utf8.data : "", utf8.len);
			out = &text;
		}
		clean_controls(out);
		if (out->len > 0) {
			emit(c, MAIL_TEXT_BODY, NULL, out->data, out->len);
			if (for_preview)
				preview_add(c, out->data, out->len);
		}
		s = e;
		if (c->quiet && c->preview_done)
			break;   /* nothing more is wanted from this part */
	}
	emit(c, MAIL_TEXT_BODY, NULL, "\n", 1);
	conv_deinit(&cv);
	mail_params_free(&params);
	buf_free(&raw);
	buf_free(&utf8);
	buf_free(&text);
}

/* Which leaf feeds the preview: the first text/plain, else the first
 * text/html, not counting attachments. */
static int pick_preview(const struct mparse *mp)
{
	int html = -1;
	for (uint32_t i = 0; i < mp->count; i++) {
		const struct mpart *p = &mp->parts[i];
		struct slice t, st;
		if (!(p->flags & MP_TEXT) || is_attachment(p))
			continue;
		if (!mpart_content_type(mp, p, &t, &st) || mail_slice_eq_ci(st, "plain"))
			return (int)i;
		if (mail_slice_eq_ci(st, "html") && html < 0)
			html = (int)i;
	}
	return html;
}

void mail_collect_text(const struct mparse *mp,
		       const struct mail_analyze_options *opt,
		       struct mail_result *r)
{
	struct collector c;
	memset(&c, 0, sizeof(c));
	c.opt = opt;
	c.r = r;
	buf_init(&c.header, 0);
	buf_init(&c.body, 0);
	buf_init(&c.preview, 0);
	c.body_max = opt->limits && opt->limits->max_search_text
			     ? opt->limits->max_search_text
			     : mp->limits.max_search_text;
	c.preview_part = pick_preview(mp);
	c.quiet = !opt->want_text;
	if (opt->want_text)
		text_headers(&c, mp->data, mp->parts[0].hdr_size, false);
	for (uint32_t i = 0; i < mp->count; i++) {
		const struct mpart *p = &mp->parts[i];
		bool preview = (int)i == c.preview_part;
		if (i > 0 && p->parent != MAIL_NONE &&
		    (mp->parts[p->parent].flags & MP_MESSAGE) && opt->want_text)
			text_headers(&c, mp->data + p->hdr_off, p->hdr_size, true);
		if ((p->flags & (MP_MULTIPART | MP_MESSAGE)) &&
		    p->first_child != MAIL_NONE)
			continue;
		if (!(p->flags & MP_TEXT))
			continue;   /* attachments' bodies are not text */
		struct slice t, st;
		bool html = mpart_content_type(mp, p, &t, &st) &&
			    mail_slice_eq_ci(st, "html");
		if (!opt->want_text && !preview)
			continue;
		text_body(&c, mp, i, html, preview);
	}
	r->preview = mail_buf_take(&c.preview);
	if (opt->text_cb == NULL && opt->want_text) {
		r->header_text_len = c.header.len;
		r->header_text = mail_buf_take(&c.header);
		r->body_text_len = c.body.len;
		r->body_text = mail_buf_take(&c.body);
	} else {
		buf_free(&c.header);
		buf_free(&c.body);
		r->header_text = xstrdup("");
		r->body_text = xstrdup("");
	}
}
