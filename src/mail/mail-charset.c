/*
 * Charset conversion to UTF-8 with iconv (glibc knows hundreds of
 * charsets), and the fallback for mail that lies about its charset or
 * names one nobody knows: valid UTF-8 is kept, anything else is read as
 * Windows-1252, whose 0x80-0x9F are the "smart quotes" that mislabelled
 * Latin-1 mail actually contains. Conversion never fails.
 */
#include "mail-private.h"

#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

/* iconv_open() loads a gconv module (dlopen) and iconv_close() unloads
 * it: far more than converting a short header. Each thread keeps its
 * last few converters open (round-robin), closed when the thread ends. */
#define ICONV_CACHE 8

struct iconv_cache {
	char name[ICONV_CACHE][48];
	iconv_t cd[ICONV_CACHE];
	unsigned next;
};

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_destroy(void *p)
{
	struct iconv_cache *c = p;
	for (unsigned i = 0; i < ICONV_CACHE; i++)
		if (c->name[i][0] != '\0')
			iconv_close(c->cd[i]);
	free(c);
}

static void cache_key_init(void)
{
	(void)pthread_key_create(&cache_key, cache_destroy);
}

/* A converter from name to UTF-8, reset to its initial state, or
 * (iconv_t)-1. Do not close it. */
iconv_t mail_iconv_get(const char *name)
{
	pthread_once(&cache_once, cache_key_init);
	struct iconv_cache *c = pthread_getspecific(cache_key);
	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		(void)pthread_setspecific(cache_key, c);
	}
	for (unsigned i = 0; i < ICONV_CACHE; i++) {
		if (c->name[i][0] != '\0' && strcasecmp(c->name[i], name) == 0) {
			iconv(c->cd[i], NULL, NULL, NULL, NULL);
			return c->cd[i];
		}
	}
	if (strlen(name) >= sizeof(c->name[0]))
		return (iconv_t)-1;
	iconv_t cd = iconv_open("UTF-8", name);
	if (cd == (iconv_t)-1)
		return cd;
	unsigned slot = c->next++ % ICONV_CACHE;
	if (c->name[slot][0] != '\0')
		iconv_close(c->cd[slot]);
	strcpy(c->name[slot], name);
	c->cd[slot] = cd;
	return cd;
}

/* Windows-1252 0x80..0x9F; 0 where the code page has a hole (those map to
 * the C1 control of the same value, as ISO-8859-1 says). */
static const uint16_t cp1252_high[32] = {
	0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
	0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
};

void mail_utf8_put(struct buf *out, uint32_t cp)
{
	char tmp[4];
	size_t n;
	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		cp = 0xFFFD;
	if (cp < 0x80) {
		tmp[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		tmp[0] = (char)(0xC0 | (cp >> 6));
		tmp[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		tmp[0] = (char)(0xE0 | (cp >> 12));
		tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		tmp[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		tmp[0] = (char)(0xF0 | (cp >> 18));
		tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		tmp[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	mail_buf_put(out, tmp, n);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
size_t mail_utf8_seq_len(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

bool mail_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = mail_utf8_seq_len(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* The fallback: valid UTF-8 sequences as they are, other bytes as
 * Windows-1252. */
void mail_utf8_repair(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;
	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = mail_utf8_seq_len(p + i, len - i);
		if (n > 0) {
			i += n;
			continue;
		}
		mail_buf_put(out, s + run, i - run);
		unsigned char c = p[i];
		uint32_t cp = c;
		if (c >= 0x80 && c <= 0x9F && cp1252_high[c - 0x80] != 0)
			cp = cp1252_high[c - 0x80];
		mail_utf8_put(out, cp);
		i++;
		run = i;
	}
	mail_buf_put(out, s + run, len - run);
}

/* Replaces what is not valid UTF-8 in out from offset start with
 * U+FFFD: iconv of some charsets (UCS-4, UTF-32 with values past
 * U+10FFFF) writes 5- and 6-byte sequences no UTF-8 reader accepts. */
void mail_utf8_sanitize(struct buf *out, size_t start)
{
	/* an empty buffer may have no storage: out->data is NULL */
	if (out->len <= start ||
	    mail_utf8_valid(out->data + start, out->len - start))
		return;
	struct buf clean;
	buf_init(&clean, 0);
	const unsigned char *p = (const unsigned char *)out->data + start;
	size_t len = out->len - start, i = 0;
	while (i < len) {
		size_t n = p[i] < 0x80 ? 1 : mail_utf8_seq_len(p + i, len - i);
		if (n == 0) {
			mail_utf8_put(&clean, 0xFFFD);
			i++;
			while (i < len && (p[i] & 0xC0) == 0x80)
				i++;   /* the rest of the bad sequence */
			continue;
		}
		mail_buf_put(&clean, p + i, n);
		i += n;
	}
	out->len = start;
	mail_buf_put(out, clean.data ? clean.data : "", clean.len);
	buf_free(&clean);
}

static bool charset_is_utf8(const char *cs)
{
	return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0;
}

static bool charset_is_ascii(const char *cs)
{
	return strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0 ||
	       strcasecmp(cs, "ansi_x3.4-1968") == 0;
}

/* Charsets mail says but iconv spells differently or not at all. */
const char *mail_charset_iconv_name(const char *cs)
{
	static const struct {
		const char *name, *iconv;
	} aliases[] = {
		{"iso-8859-8-i", "ISO-8859-8"},
		{"iso-8859-6-i", "ISO-8859-6"},
		{"ks_c_5601-1987", "CP949"},
		{"x-sjis", "SHIFT_JIS"},
		{"x-gbk", "GBK"},
		{"gb2312", "GB18030"},   /* a superset; mail says gb2312 loosely */
		{"x-unknown", NULL},
		{"unknown-8bit", NULL},
		{"x-user-defined", NULL},
		{"iso-8859-1", "WINDOWS-1252"},   /* as every browser reads it */
		{"us-ascii", "WINDOWS-1252"},
		{"latin1", "WINDOWS-1252"},
	};
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		if (strcasecmp(cs, aliases[i].name) == 0)
			return aliases[i].iconv;
	}
	return cs;
}

bool mail_charset_to_utf8(struct buf *out, const char *charset, const char *s,
			  size_t len)
{
	if (len == 0)
		return true;
	if (charset == NULL || *charset == '\0' || charset_is_utf8(charset) ||
	    charset_is_ascii(charset)) {
		/* 8-bit bytes in "us-ascii" text are almost always UTF-8 or
		 * Latin-1: the repair handles both. */
		bool ok = mail_utf8_valid(s, len);
		if (ok)
			mail_buf_put(out, s, len);
		else
			mail_utf8_repair(out, s, len);
		return ok || !charset_is_utf8(charset ? charset : "");
	}
	const char *name = mail_charset_iconv_name(charset);
	if (name == NULL) {
		mail_utf8_repair(out, s, len);
		return false;
	}
	iconv_t cd = mail_iconv_get(name);
	if (cd == (iconv_t)-1) {
		mail_utf8_repair(out, s, len);
		return false;
	}
	char tmp[4096];
	char *in = (char *)s;
	size_t inleft = len;
	bool clean = true;
	size_t start = out->len;
	while (inleft > 0) {
		char *o = tmp;
		size_t oleft = sizeof(tmp);
		size_t r = iconv(cd, &in, &inleft, &o, &oleft);
		mail_buf_put(out, tmp, sizeof(tmp) - oleft);
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG)
			continue;
		/* EILSEQ or EINVAL (truncated sequence): the charset lied
		 * about this byte; replace it and go on. */
		clean = false;
		mail_utf8_put(out, 0xFFFD);
		in++;
		inleft--;
		iconv(cd, NULL, NULL, NULL, NULL);
	}
	/* flush shift state (ISO-2022-JP) */
	char *o = tmp;
	size_t oleft = sizeof(tmp);
	iconv(cd, NULL, NULL, &o, &oleft);
	mail_buf_put(out, tmp, sizeof(tmp) - oleft);
	mail_utf8_sanitize(out, start);
	return clean;
}
