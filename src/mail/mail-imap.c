/*
 * IMAP string forms (RFC 9051 4.3): quoted when possible, a literal
 * otherwise, NIL for absent, with Dovecot's choices where the RFC leaves
 * one (clients are tuned to them): more than 4 characters that need a
 * backslash make a literal; display names and subjects are written "for
 * humans" (whitespace runs collapsed, line ends dropped, NUL shown as
 * 0x80, and then a literal whenever anything had to change).
 * Also RFC 5256 base subject and the case folding used by SEARCH.
 */
#include "mail-private.h"

#include <ctype.h>
#include <locale.h>
#include <pthread.h>
#include <string.h>
#include <wctype.h>

#define QUOTED_MAX_ESCAPES 4

/* A literal; a NUL (never allowed outside literal8, RFC 9051 4.3) is
 * sent as 0x80, as Dovecot does in ENVELOPE. */
static void append_literal(struct buf *out, const char *s, size_t len)
{
	if (buf_printf(out, "{%zu}\r\n", len) < 0)
		abort();
	size_t start = out->len;
	mail_buf_put(out, s, len);
	for (size_t i = start; i < out->len; i++)
		if (out->data[i] == '\0')
			out->data[i] = (char)0x80;
}

void mail_imap_string(struct buf *out, const char *s, size_t len, bool utf8)
{
	unsigned escapes = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			if (escapes++ < QUOTED_MAX_ESCAPES)
				continue;
		} else if (c != '\r' && c != '\n' && c != 0 &&
			   (c < 0x80 || utf8)) {
			continue;
		}
		append_literal(out, s, len);
		return;
	}
	mail_buf_putc(out, '"');
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\') {
			mail_buf_put(out, s + run, i - run);
			mail_buf_putc(out, '\\');
			run = i;
		}
	}
	mail_buf_put(out, s + run, len - run);
	mail_buf_putc(out, '"');
}

void mail_imap_nstring(struct buf *out, const char *s, size_t len, bool utf8)
{
	if (s == NULL)
		mail_buf_puts(out, "NIL");
	else
		mail_imap_string(out, s, len, utf8);
}

/* An nstring with CR and LF removed (unfolded header values). */
void mail_imap_nstring_nolf(struct buf *out, const char *s, size_t len)
{
	if (s == NULL) {
		mail_buf_puts(out, "NIL");
		return;
	}
	if (memchr(s, '\r', len) == NULL && memchr(s, '\n', len) == NULL) {
		mail_imap_string(out, s, len, false);
		return;
	}
	struct buf tmp;
	buf_init(&tmp, 0);
	for (size_t i = 0; i < len; i++)
		if (s[i] != '\r' && s[i] != '\n')
			mail_buf_putc(&tmp, s[i]);
	mail_imap_string(out, tmp.data ? tmp.data : "", tmp.len, false);
	buf_free(&tmp);
}

void mail_imap_string_for_humans(struct buf *out, const char *s, size_t len)
{
	bool modify = false, last_lwsp = true, ws_prefix = true;
	size_t remove = 0, i;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case 0:
			last_lwsp = false;
			modify = true;
			break;
		case '\t':
			modify = true;
			/* fall through */
		case ' ':
			if (last_lwsp) {
				modify = true;
				remove++;
			}
			last_lwsp = true;
			break;
		case '\r':
		case '\n':
			remove++;
			modify = true;
			break;
		case '"':
		case '\\':
			modify = true;
			last_lwsp = false;
			break;
		default:
			if (c & 0x80)
				modify = true;
			last_lwsp = false;
			break;
		}
		if (!last_lwsp)
			ws_prefix = false;
	}
	if (last_lwsp && i > 0 && !ws_prefix) {
		modify = true;
		remove++;
	}
	if (!modify) {
		mail_buf_putc(out, '"');
		mail_buf_put(out, s, len);
		mail_buf_putc(out, '"');
		return;
	}
	if (len == remove) {
		mail_buf_puts(out, "\"\"");
		return;
	}
	if (buf_printf(out, "{%zu}\r\n", len - remove) < 0)
		abort();
	size_t start = out->len;
	last_lwsp = true;
	ws_prefix = true;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case 0:
			mail_buf_putc(out, (char)0x80);
			last_lwsp = false;
			break;
		case '\t':
		case ' ':
			if (!last_lwsp)
				mail_buf_putc(out, ' ');
			last_lwsp = true;
			break;
		case '\r':
		case '\n':
			break;
		default:
			last_lwsp = false;
			mail_buf_putc(out, (char)c);
			break;
		}
		if (!last_lwsp)
			ws_prefix = false;
	}
	if (last_lwsp && i > 0 && !ws_prefix)
		out->len--;
	/* keep the literal's count honest whatever the input was */
	if (out->len - start != len - remove) {
		size_t got = out->len - start;
		char *copy = xstrndup(out->data + start, got);
		out->len = start;
		while (out->len > 0 && out->data[out->len - 1] != '{')
			out->len--;
		if (out->len > 0)
			out->len--;
		append_literal(out, copy, got);
		free(copy);
	}
	out->data[out->len] = '\0';
}

/* ---- RFC 5256 2.1 base subject ------------------------------------ */

static bool starts_ci(const char *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	return len >= n && strncasecmp(s, lit, n) == 0;
}

/* subj-blob = "[" *BLOBCHAR "]" *WSP */
static size_t skip_blob(const char *s, size_t len)
{
	if (len == 0 || s[0] != '[')
		return 0;
	size_t i = 1;
	while (i < len && s[i] != '[' && s[i] != ']')
		i++;
	if (i >= len || s[i] != ']')
		return 0;
	i++;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i;
}

/* subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":" */
static size_t skip_refwd(const char *s, size_t len)
{
	size_t i;
	if (starts_ci(s, len, "re"))
		i = 2;
	else if (starts_ci(s, len, "fwd"))
		i = 3;
	else if (starts_ci(s, len, "fw"))
		i = 2;
	else
		return 0;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	i += skip_blob(s + i, len - i);   /* at most one [subj-blob] */
	if (i < len && s[i] == ':')
		return i + 1;
	return 0;
}

void mail_base_subject(struct buf *out, const char *in, size_t in_len)
{
	/* (1) collapse whitespace runs to one space */
	struct buf b;
	buf_init(&b, 0);
	bool sp = false;
	for (size_t i = 0; i < in_len; i++) {
		char c = in[i];
		if (c == '\r' || c == '\n')
			continue;
		if (c == ' ' || c == '\t') {
			sp = true;
			continue;
		}
		if (sp && b.len > 0)
			mail_buf_putc(&b, ' ');
		sp = false;
		mail_buf_putc(&b, c);
	}
	const char *s = b.data ? b.data : "";
	size_t start = 0, end = b.len;
	for (;;) {
		bool changed = false;
		/* (2) remove subj-trailer: "(fwd)" / WSP at the end */
		for (;;) {
			while (end > start && s[end - 1] == ' ')
				end--;
			if (end - start >= 5 &&
			    strncasecmp(s + end - 5, "(fwd)", 5) == 0) {
				end -= 5;
				continue;
			}
			break;
		}
		/* (3)-(5) remove subj-leader repeatedly */
		for (;;) {
			size_t n;
			while (start < end && s[start] == ' ')
				start++;
			n = skip_refwd(s + start, end - start);
			if (n > 0) {
				start += n;
				changed = true;
				continue;
			}
			n = skip_blob(s + start, end - start);
			if (n > 0 && n < end - start) {
				/* (4) only if something remains after it */
				start += n;
				changed = true;
				continue;
			}
			break;
		}
		/* (6) [fwd: ... ] */
		if (end - start >= 6 && strncasecmp(s + start, "[fwd:", 5) == 0 &&
		    s[end - 1] == ']') {
			start += 5;
			end--;
			continue;
		}
		if (!changed)
			break;
	}
	while (start < end && s[start] == ' ')
		start++;
	mail_buf_put(out, s + start, end - start);
	buf_free(&b);
	if (out->data == NULL)
		mail_buf_put(out, "", 0), (void)buf_append(out, "", 0);
}

/* ---- case folding for SEARCH -------------------------------------- */

static locale_t utf8_loc;
static pthread_once_t utf8_loc_once = PTHREAD_ONCE_INIT;

static void utf8_locale_init(void)
{
	/* C.UTF-8 has glibc's full Unicode case mapping; (locale_t)0 if
	 * missing, then only ASCII is folded */
	utf8_loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static locale_t utf8_locale(void)
{
	pthread_once(&utf8_loc_once, utf8_locale_init);
	return utf8_loc;
}

static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *n_r)
{
	size_t n = mail_utf8_seq_len(s, len);
	if (n == 0) {
		*n_r = 1;
		return 0xFFFD;
	}
	*n_r = n;
	if (n == 1)
		return s[0];
	uint32_t cp = s[0] & (0x7F >> n);
	for (size_t i = 1; i < n; i++)
		cp = (cp << 6) | (s[i] & 0x3F);
	return cp;
}

void mail_text_fold(struct buf *out, const char *s, size_t len)
{
	locale_t loc = utf8_locale();
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		if (p[i] < 0x80) {
			mail_buf_putc(out, mail_lower((char)p[i]));
			i++;
			continue;
		}
		size_t n;
		uint32_t cp = utf8_next(p + i, len - i, &n);
		if (loc != (locale_t)0)
			cp = (uint32_t)towlower_l((wint_t)cp, loc);
		mail_utf8_put(out, cp);
		i += n;
	}
}

bool mail_text_contains(const char *hay, size_t hay_len, const char *needle,
			size_t needle_len)
{
	struct buf h, n;
	buf_init(&h, 0);
	buf_init(&n, 0);
	mail_text_fold(&h, hay, hay_len);
	mail_text_fold(&n, needle, needle_len);
	bool r = n.len == 0 ||
		 (h.len >= n.len && memmem(h.data, h.len, n.data, n.len) != NULL);
	buf_free(&h);
	buf_free(&n);
	return r;
}
