/*
 * Parameters of Content-Type and Content-Disposition (RFC 2045 5.1,
 * RFC 2183), with RFC 2231 continuations and charsets. Two views:
 * mail_params_raw() gives the list as BODYSTRUCTURE shows it in Dovecot's
 * form (continuations joined, extended values left encoded, names as
 * written), and mail_params_parse() the decoded UTF-8 values an
 * application wants (filenames, boundaries, charsets).
 */
#include "mail-private.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 2045 tspecials; a token is any other printable ASCII but space */
static bool is_tspecial(char c)
{
	switch (c) {
	case '(': case ')': case '<': case '>': case '@': case ',': case ';':
	case ':': case '\\': case '"': case '/': case '[': case ']': case '?':
	case '=':
		return true;
	default:
		return false;
	}
}

static bool is_token_char(char c)
{
	return (unsigned char)c > 0x20 && (unsigned char)c != 0x7F &&
	       !is_tspecial(c);
}


struct lexer {
	const char *p, *end;
};

/* Skips whitespace and (nested) comments. */
static void skip_cfws(struct lexer *lx)
{
	while (lx->p < lx->end) {
		char c = *lx->p;
		if (mail_is_lwsp(c)) {
			lx->p++;
		} else if (c == '(') {
			int depth = 0;
			while (lx->p < lx->end) {
				c = *lx->p++;
				if (c == '\\' && lx->p < lx->end)
					lx->p++;
				else if (c == '(')
					depth++;
				else if (c == ')' && --depth == 0)
					break;
			}
		} else {
			break;
		}
	}
}

/* A token (8-bit bytes accepted, as Dovecot does). */
static bool lex_token(struct lexer *lx, struct buf *out)
{
	const char *s = lx->p;
	while (lx->p < lx->end && is_token_char(*lx->p))
		lx->p++;
	mail_buf_put(out, s, (size_t)(lx->p - s));
	return lx->p > s;
}

static bool lex_quoted(struct lexer *lx, struct buf *out)
{
	if (lx->p >= lx->end || *lx->p != '"')
		return false;
	lx->p++;
	while (lx->p < lx->end) {
		char c = *lx->p++;
		if (c == '"')
			return true;
		if (c == '\\' && lx->p < lx->end)
			c = *lx->p++;
		if (c == '\r' || c == '\n')
			continue;   /* folding inside the string */
		mail_buf_putc(out, c);
	}
	return false;   /* unterminated: not a value (Dovecot stops here) */
}

struct rawparam {
	char *name;
	char *value;
};

/* Parses "token[/token]" and the ;-separated name=value list. */
static void lex_params(const char *s, size_t len, struct buf *value_r,
		       struct rawparam **list_r, size_t *count_r)
{
	struct lexer lx = {s, s + len};
	struct rawparam *list = NULL;
	size_t count = 0;
	skip_cfws(&lx);
	lex_token(&lx, value_r);
	skip_cfws(&lx);
	if (lx.p < lx.end && *lx.p == '/') {
		lx.p++;
		skip_cfws(&lx);
		mail_buf_putc(value_r, '/');
		lex_token(&lx, value_r);
	}
	/* *(";" name "=" value), read the way Dovecot's rfc2231_parse()
	 * does so BODYSTRUCTURE agrees: names and values may be empty,
	 * "name==?utf-8?..." (an unquoted encoded word) is taken up to the
	 * next ";" or space, and junk (a value followed by more, a name
	 * without "=") is skipped up to the next ";". */
	for (;;) {
		skip_cfws(&lx);
		if (lx.p >= lx.end)
			break;
		if (*lx.p != ';') {
			/* junk after a value: go on at the next ';' */
			const char *semi = memchr(lx.p, ';', (size_t)(lx.end - lx.p));
			if (semi == NULL)
				break;
			lx.p = semi;
		}
		lx.p++;
		skip_cfws(&lx);
		if (lx.p >= lx.end)
			break;
		struct buf name, val;
		buf_init(&name, 0);
		buf_init(&val, 0);
		lex_token(&lx, &name);
		skip_cfws(&lx);
		if (lx.p >= lx.end || *lx.p != '=') {
			/* not a parameter: go on at the next ';' */
			buf_free(&name);
			continue;
		}
		lx.p++;
		skip_cfws(&lx);
		if (lx.p < lx.end && *lx.p == '"') {
			if (!lex_quoted(&lx, &val)) {
				buf_free(&name);
				buf_free(&val);
				break;
			}
		} else if (lx.p < lx.end && *lx.p == '=') {
			const char *v = lx.p;
			while (lx.p < lx.end && *lx.p != ';' && !mail_is_lwsp(*lx.p))
				lx.p++;
			mail_buf_put(&val, v, (size_t)(lx.p - v));
		} else {
			lex_token(&lx, &val);
		}
		list = xrealloc(list, (count + 1) * sizeof(*list));
		list[count].name = mail_buf_take(&name);
		list[count].value = mail_buf_take(&val);
		count++;
	}
	*list_r = list;
	*count_r = count;
}

/* RFC 2231 3: name*N[*]; returns the base name length, the index (-1 if
 * none) and whether the value is extended (charset'lang'%xx). */
static size_t split_2231(const char *name, long *idx_r, bool *ext_r)
{
	const char *star = strchr(name, '*');
	*idx_r = -1;
	*ext_r = false;
	if (star == NULL)
		return strlen(name);
	const char *q = star + 1;
	if (*q == '\0') {
		*ext_r = true;
		return (size_t)(star - name);
	}
	long idx = 0;
	if (*q < '0' || *q > '9')
		return strlen(name);
	while (*q >= '0' && *q <= '9') {
		idx = idx * 10 + (*q - '0');
		if (idx > 100000)
			return strlen(name);
		q++;
	}
	if (*q == '*') {
		*ext_r = true;
		q++;
	}
	if (*q != '\0')
		return strlen(name);
	*idx_r = idx;
	return (size_t)(star - name);
}

static int cmp_2231(const void *a, const void *b)
{
	const struct rawparam *x = a, *y = b;
	long ix, iy;
	bool ex, ey;
	size_t lx = split_2231(x->name, &ix, &ex);
	size_t ly = split_2231(y->name, &iy, &ey);
	size_t n = lx < ly ? lx : ly;
	int c = strncasecmp(x->name, y->name, n);
	if (c != 0)
		return c;
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return ix < iy ? -1 : ix > iy;
}

/* Joins continuations: plain parameters first (in order), then each
 * continued one as "name" or, if its first piece is extended, "name*",
 * as Dovecot's rfc2231_parse() does. */
static void join_2231(struct rawparam *list, size_t count,
		      struct rawparam **out_r, size_t *out_count_r)
{
	struct rawparam *out = xcalloc(count + 1, sizeof(*out));
	size_t n = 0, ncont = 0;
	struct rawparam *cont = xcalloc(count + 1, sizeof(*cont));
	for (size_t i = 0; i < count; i++) {
		long idx;
		bool ext;
		split_2231(list[i].name, &idx, &ext);
		if (idx < 0 && !ext) {
			out[n++] = list[i];
		} else {
			cont[ncont++] = list[i];
		}
	}
	qsort(cont, ncont, sizeof(*cont), cmp_2231);
	for (size_t i = 0; i < ncont;) {
		long idx;
		bool ext;
		size_t blen = split_2231(cont[i].name, &idx, &ext);
		size_t j = i + 1;
		while (j < ncont) {
			long ij;
			bool ej;
			size_t bl = split_2231(cont[j].name, &ij, &ej);
			if (bl != blen || strncasecmp(cont[j].name, cont[i].name, blen) != 0)
				break;
			j++;
		}
		/* cont[i..j) share a base name; a proper series is 0,1,2.. */
		bool series = idx == 0;
		for (size_t k = i; series && k < j; k++) {
			long ik;
			bool ek;
			split_2231(cont[k].name, &ik, &ek);
			if (ik != (long)(k - i))
				series = false;
		}
		if (!series || idx < 0) {
			for (size_t k = i; k < j; k++)
				out[n++] = cont[k];
			i = j;
			continue;
		}
		struct buf v;
		buf_init(&v, 0);
		for (size_t k = i; k < j; k++) {
			long ik;
			bool ek;
			split_2231(cont[k].name, &ik, &ek);
			if (ext && !ek) {
				/* a plain piece after an extended first one:
				 * encode it so the whole stays one encoding */
				for (const char *c = cont[k].value; *c; c++) {
					if (is_token_char(*c) && *c != '%' && *c != '\'' && *c != '*')
						mail_buf_putc(&v, *c);
					else {
						char hex[4];
						snprintf(hex, sizeof(hex), "%%%02X",
							 (unsigned char)*c);
						mail_buf_puts(&v, hex);
					}
				}
			} else {
				mail_buf_puts(&v, cont[k].value);
			}
		}
		struct rawparam r;
		r.name = xasprintf("%.*s%s", (int)blen, cont[i].name, ext ? "*" : "");
		r.value = mail_buf_take(&v);
		for (size_t k = i; k < j; k++) {
			free(cont[k].name);
			free(cont[k].value);
		}
		out[n++] = r;
		i = j;
	}
	free(cont);
	*out_r = out;
	*out_count_r = n;
}

void mail_params_raw(const char *s, size_t len, struct buf *value_r,
		     struct mail_param **list_r, size_t *count_r)
{
	struct rawparam *raw, *joined;
	size_t count, jcount;
	lex_params(s, len, value_r, &raw, &count);
	join_2231(raw, count, &joined, &jcount);
	free(raw);
	struct mail_param *list = xcalloc(jcount + 1, sizeof(*list));
	for (size_t i = 0; i < jcount; i++) {
		list[i].name = joined[i].name;
		list[i].value = joined[i].value;
	}
	free(joined);
	*list_r = list;
	*count_r = jcount;
}

/* charset'lang'%xx... to UTF-8 (RFC 2231 4). */
static char *decode_extended(const char *v)
{
	const char *q1 = strchr(v, '\'');
	const char *q2 = q1 != NULL ? strchr(q1 + 1, '\'') : NULL;
	char *charset = NULL;
	const char *text = v;
	if (q2 != NULL) {
		charset = xstrndup(v, (size_t)(q1 - v));
		text = q2 + 1;
	}
	struct buf bytes, out;
	buf_init(&bytes, 0);
	buf_init(&out, 0);
	for (const char *c = text; *c; c++) {
		int h, l;
		if (*c == '%' && (h = mail_hexval(c[1])) >= 0 && (l = mail_hexval(c[2])) >= 0) {
			mail_buf_putc(&bytes, (char)(h * 16 + l));
			c += 2;
		} else {
			mail_buf_putc(&bytes, *c);
		}
	}
	mail_charset_to_utf8(&out, charset, bytes.data ? bytes.data : "",
			     bytes.len);
	free(charset);
	buf_free(&bytes);
	return mail_buf_take(&out);
}

void mail_params_parse(const char *s, size_t len, struct mail_params *r)
{
	struct buf value;
	struct mail_param *list;
	size_t count;
	buf_init(&value, 0);
	memset(r, 0, sizeof(*r));
	if (s == NULL)
		s = "";
	mail_params_raw(s, len, &value, &list, &count);
	for (size_t i = 0; i < value.len; i++)
		value.data[i] = mail_lower(value.data[i]);
	r->value = mail_buf_take(&value);
	for (size_t i = 0; i < count; i++) {
		size_t nl = strlen(list[i].name);
		char *decoded;
		if (nl > 0 && list[i].name[nl - 1] == '*') {
			list[i].name[nl - 1] = '\0';
			decoded = decode_extended(list[i].value);
		} else {
			/* RFC 2047 words in parameters: wrong but common */
			struct buf out;
			buf_init(&out, 0);
			mail_decode_2047(&out, list[i].value, strlen(list[i].value));
			decoded = mail_buf_take(&out);
		}
		free(list[i].value);
		list[i].value = decoded;
		for (char *c = list[i].name; *c; c++)
			*c = mail_lower(*c);
	}
	r->params = list;
	r->count = count;
}

const char *mail_params_get(const struct mail_params *p, const char *name)
{
	for (size_t i = 0; i < p->count; i++) {
		if (strcasecmp(p->params[i].name, name) == 0)
			return p->params[i].value;
	}
	return NULL;
}

void mail_params_free(struct mail_params *p)
{
	for (size_t i = 0; i < p->count; i++) {
		free(p->params[i].name);
		free(p->params[i].value);
	}
	free(p->params);
	free(p->value);
	memset(p, 0, sizeof(*p));
}
