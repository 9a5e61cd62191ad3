/*
 * The Sieve lexer: see sieve-lex.h. Strings are decoded once, here:
 * quoted strings lose their escapes (RFC 5228 2.4.2: an unknown escape
 * is the character itself), text: blocks their dot-stuffing, and with
 * encoded-character (RFC 5228 2.4.2.4) "${hex:..}" / "${unicode:..}"
 * become the bytes they name. A string must be valid UTF-8.
 */
#include "sieve-lex.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

void sv_lex_init(struct sv_lexer *lx, const char *text, size_t len,
		 struct buf *pool, struct buf *strs)
{
	memset(lx, 0, sizeof(*lx));
	lx->p = text;
	lx->end = text + len;
	lx->line_start = text;
	lx->line = 1;
	lx->pool = pool;
	lx->strs = strs;
}

static unsigned col_of(struct sv_lexer *lx, const char *p)
{
	/* columns count characters, not bytes; counted on from the last
	 * position asked for on this line (a 1 MB line stays linear) */
	if (lx->col_at < lx->line_start || lx->col_at > p) {
		lx->col_at = lx->line_start;
		lx->col_val = 1;
	}
	for (const char *q = lx->col_at; q < p; q++)
		if (((unsigned char)*q & 0xC0) != 0x80)
			lx->col_val++;
	lx->col_at = p;
	return lx->col_val;
}

static struct sv_token lex_error(struct sv_lexer *lx, const char *at,
				 const char *msg)
{
	struct sv_token t = {.t = TK_ERROR};
	snprintf(lx->error, sizeof(lx->error), "%s", msg);
	lx->err_line = t.line = lx->line;
	lx->err_col = t.col = col_of(lx, at);
	return t;
}

static struct sv_token err_at(struct sv_lexer *lx, unsigned line,
			       unsigned col, const char *msg)
{
	struct sv_token t = {.t = TK_ERROR, .line = line, .col = col};
	snprintf(lx->error, sizeof(lx->error), "%s", msg);
	lx->err_line = line;
	lx->err_col = col;
	return t;
}

static void newline(struct sv_lexer *lx, const char *after)
{
	lx->line++;
	lx->line_start = after;
}

size_t sv_utf8_seq(const unsigned char *p, size_t left)
{
	unsigned c = p[0];
	size_t n;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2; min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3; min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4; min = 0x10000;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	unsigned cp = c & (0x3F >> (n - 1));
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

static void put_utf8(struct buf *b, unsigned cp)
{
	char o[4];
	size_t n;
	if (cp < 0x80) {
		o[0] = (char)cp; n = 1;
	} else if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F)); n = 2;
	} else if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
	} else {
		o[0] = (char)(0xF0 | (cp >> 18));
		o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
	}
	buf_append(b, o, n);
}

/* One "${hex: ...}" or "${unicode: ...}" at s (which starts with "${").
 * Returns the bytes consumed (0: not an encoding, left as is; -1: a
 * unicode value out of range, an error). */
static long encoded_one(const char *s, size_t n, struct buf *out)
{
	size_t i = 2;
	bool unicode;
	if (n >= 6 && strncasecmp(s + 2, "hex:", 4) == 0) {
		unicode = false; i = 6;
	} else if (n >= 10 && strncasecmp(s + 2, "unicode:", 8) == 0) {
		unicode = true; i = 10;
	} else {
		return 0;
	}
	struct buf tmp;
	buf_init(&tmp, 0);
	bool any = false, bad = false;
	for (;;) {
		while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' ||
				 s[i] == '\n'))
			i++;
		if (i >= n)
			goto literal;
		if (s[i] == '}')
			break;
		size_t st = i;
		unsigned long v = 0;
		while (i < n && isxdigit((unsigned char)s[i])) {
			if (i - st < 8)
				v = v * 16 + (unsigned long)(isdigit((unsigned char)s[i])
					? s[i] - '0'
					: (tolower((unsigned char)s[i]) - 'a' + 10));
			else
				bad = true;
			i++;
		}
		if (i == st)
			goto literal;
		if (!unicode && i - st > 2)
			goto literal;
		any = true;
		if (unicode) {
			if (bad || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
				buf_free(&tmp);
				return -1;
			}
			put_utf8(&tmp, (unsigned)v);
		} else {
			buf_append_char(&tmp, (char)v);
		}
	}
	if (!any)
		goto literal;
	buf_append(out, tmp.data, tmp.len);
	buf_free(&tmp);
	return (long)i + 1;
literal:
	buf_free(&tmp);
	return 0;
}

/* Appends the decoded string s/n to the pool as one sv_str. */
static int finish_string(struct sv_lexer *lx, struct buf *raw,
			 struct sv_token *t)
{
	struct buf *pool = lx->pool;
	size_t start = pool->len;
	if (lx->encoded) {
		for (size_t i = 0; i < raw->len;) {
			if (raw->data[i] == '$' && i + 1 < raw->len &&
			    raw->data[i + 1] == '{') {
				long k = encoded_one(raw->data + i, raw->len - i,
						     pool);
				if (k < 0) {
					*t = err_at(lx, t->line, t->col,
						    "encoded-character: a unicode "
						    "value that is no character");
					return -1;
				}
				if (k > 0) {
					i += (size_t)k;
					continue;
				}
			}
			buf_append_char(pool, raw->data[i++]);
		}
	} else {
		buf_append(pool, raw->data, raw->len);
	}
	size_t len = pool->len - start;
	const unsigned char *u = (const unsigned char *)pool->data + start;
	for (size_t i = 0; i < len;) {
		size_t k = sv_utf8_seq(u + i, len - i);
		if (k == 0) {
			*t = err_at(lx, t->line, t->col,
				    "string is not valid UTF-8");
			return -1;
		}
		i += k;
	}
	if (len > UINT32_MAX || start > UINT32_MAX) {
		*t = err_at(lx, t->line, t->col, "script too large");
		return -1;
	}
	struct sv_str st = {(uint32_t)start, (uint32_t)len, 0};
	if (lx->variables && memmem(pool->data + start, len, "${", 2))
		st.vars = 1;
	t->str = (uint32_t)(lx->strs->len / sizeof(st));
	buf_append(lx->strs, &st, sizeof(st));
	return 0;
}

static struct sv_token lex_quoted(struct sv_lexer *lx, struct sv_token t)
{
	struct buf raw;
	buf_init(&raw, 0);
	lx->p++;
	for (;;) {
		if (lx->p >= lx->end) {
			buf_free(&raw);
			return err_at(lx, t.line, t.col, "unterminated string");
		}
		char c = *lx->p++;
		if (c == '"')
			break;
		if (c == '\\') {
			if (lx->p >= lx->end)
				continue;
			c = *lx->p++;
		}
		if (c == '\n')
			newline(lx, lx->p);
		buf_append_char(&raw, c);
	}
	t.t = TK_STR;
	finish_string(lx, &raw, &t);
	buf_free(&raw);
	return t;
}

/* text: [spaces] [#comment] CRLF, lines, "." CRLF (RFC 5228 8.1). */
static struct sv_token lex_text(struct sv_lexer *lx, struct sv_token t)
{
	lx->p += 5;
	while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t'))
		lx->p++;
	if (lx->p < lx->end && *lx->p == '#')
		while (lx->p < lx->end && *lx->p != '\n')
			lx->p++;
	if (lx->p < lx->end && *lx->p == '\r')
		lx->p++;
	if (lx->p >= lx->end || *lx->p != '\n')
		return lex_error(lx, lx->p, "text: must be followed by a line end");
	lx->p++;
	newline(lx, lx->p);
	struct buf raw;
	buf_init(&raw, 0);
	for (;;) {
		if (lx->p >= lx->end) {
			buf_free(&raw);
			return err_at(lx, t.line, t.col, "unterminated text: "
				      "block (no line with a single '.')");
		}
		const char *nl = memchr(lx->p, '\n', (size_t)(lx->end - lx->p));
		const char *le = nl ? nl : lx->end;
		size_t n = (size_t)(le - lx->p);
		size_t content = n;
		if (content > 0 && lx->p[content - 1] == '\r')
			content--;
		if (content == 1 && lx->p[0] == '.' && nl) {
			lx->p = nl + 1;
			newline(lx, lx->p);
			break;
		}
		if (!nl) {
			lx->p = lx->end;
			continue;
		}
		const char *s = lx->p;
		if (content > 0 && s[0] == '.')
			s++, content--;   /* dot-stuffing */
		buf_append(&raw, s, content);
		buf_append(&raw, "\r\n", 2);
		lx->p = nl + 1;
		newline(lx, lx->p);
	}
	t.t = TK_STR;
	finish_string(lx, &raw, &t);
	buf_free(&raw);
	return t;
}

static bool skip_space(struct sv_lexer *lx, struct sv_token *err)
{
	while (lx->p < lx->end) {
		char c = *lx->p;
		if (c == '\n') {
			lx->p++;
			newline(lx, lx->p);
		} else if (c == ' ' || c == '\t' || c == '\r') {
			lx->p++;
		} else if (c == '#') {
			while (lx->p < lx->end && *lx->p != '\n')
				lx->p++;
		} else if (c == '/' && lx->p + 1 < lx->end && lx->p[1] == '*') {
			unsigned line = lx->line, col = col_of(lx, lx->p);
			lx->p += 2;
			for (;;) {
				if (lx->p + 1 >= lx->end) {
					*err = err_at(lx, line, col,
						      "unterminated comment");
					return false;
				}
				if (lx->p[0] == '*' && lx->p[1] == '/') {
					lx->p += 2;
					break;
				}
				if (*lx->p == '\n')
					newline(lx, lx->p + 1);
				lx->p++;
			}
		} else {
			break;
		}
	}
	return true;
}

static bool is_id_start(char c)
{
	return isalpha((unsigned char)c) || c == '_';
}
static bool is_id_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

static struct sv_token lex_one(struct sv_lexer *lx)
{
	struct sv_token t = {0};
	if (!skip_space(lx, &t))
		return t;
	t.line = lx->line;
	t.col = col_of(lx, lx->p);
	if (lx->p >= lx->end) {
		t.t = TK_EOF;
		return t;
	}
	const char *s = lx->p;
	char c = *s;
	switch (c) {
	case '[': t.t = TK_LBRACKET; lx->p++; return t;
	case ']': t.t = TK_RBRACKET; lx->p++; return t;
	case '(': t.t = TK_LPAREN; lx->p++; return t;
	case ')': t.t = TK_RPAREN; lx->p++; return t;
	case '{': t.t = TK_LBRACE; lx->p++; return t;
	case '}': t.t = TK_RBRACE; lx->p++; return t;
	case ';': t.t = TK_SEMI; lx->p++; return t;
	case ',': t.t = TK_COMMA; lx->p++; return t;
	case '"': return lex_quoted(lx, t);
	default: break;
	}
	if (c == ':') {
		lx->p++;
		if (lx->p >= lx->end || !is_id_start(*lx->p))
			return lex_error(lx, s, "':' must be followed by a tag name");
		t.p = lx->p;
		while (lx->p < lx->end && is_id_char(*lx->p))
			lx->p++;
		t.len = (size_t)(lx->p - t.p);
		t.t = TK_TAG;
		return t;
	}
	if (isdigit((unsigned char)c)) {
		uint64_t v = 0;
		while (lx->p < lx->end && isdigit((unsigned char)*lx->p)) {
			if (__builtin_mul_overflow(v, 10, &v) ||
			    __builtin_add_overflow(v, (uint64_t)(*lx->p - '0'), &v))
				return lex_error(lx, s, "number too large");
			lx->p++;
		}
		uint64_t mul = 1;
		if (lx->p < lx->end) {
			switch (*lx->p) {
			case 'K': case 'k': mul = 1024; break;
			case 'M': case 'm': mul = 1024 * 1024; break;
			case 'G': case 'g': mul = 1024ull * 1024 * 1024; break;
			default: break;
			}
			if (mul > 1)
				lx->p++;
		}
		if (__builtin_mul_overflow(v, mul, &v))
			return lex_error(lx, s, "number too large");
		if (lx->p < lx->end && is_id_char(*lx->p))
			return lex_error(lx, s, "bad number");
		t.t = TK_NUM;
		t.num = v;
		return t;
	}
	if (is_id_start(c)) {
		t.p = s;
		while (lx->p < lx->end && is_id_char(*lx->p))
			lx->p++;
		t.len = (size_t)(lx->p - s);
		if (t.len == 4 && strncasecmp(s, "text", 4) == 0 &&
		    lx->p < lx->end && *lx->p == ':') {
			lx->p = s;
			return lex_text(lx, t);
		}
		t.t = TK_ID;
		return t;
	}
	if ((unsigned char)c >= 0x80)
		return lex_error(lx, s, "unexpected character (not ASCII) "
				 "outside a string");
	char msg[64];
	snprintf(msg, sizeof(msg), "unexpected character '%c'",
		 isprint((unsigned char)c) ? c : '?');
	return lex_error(lx, s, msg);
}

struct sv_token sv_lex_next(struct sv_lexer *lx)
{
	if (lx->have_peek) {
		lx->have_peek = false;
		return lx->peeked;
	}
	return lex_one(lx);
}

struct sv_token sv_lex_peek(struct sv_lexer *lx)
{
	if (!lx->have_peek) {
		lx->peeked = lex_one(lx);
		lx->have_peek = true;
	}
	return lx->peeked;
}
