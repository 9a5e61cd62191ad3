/*
 * mbox parsers (migrate-parse.h): the From_ line, the incremental
 * splitter (mboxrd and mboxo quoting) and the header fields Dovecot and
 * UW-IMAP keep in a message (flags, keywords, UIDs).
 *
 * Splitting (RFC 4155): a message begins at a line that starts with
 * "From ", follows a blank line (or begins the file) and reads as a From_
 * line (sender, then an asctime date); the blank line before it ends the
 * previous message and belongs to neither. A "From " line elsewhere (an
 * unquoted one in a body, not after a blank line or without a date) is
 * body text. Lines of ">From ", ">>From " ... lose one ">" (mboxrd), or
 * only ">From " does (mboxo). The splitter keeps at most one line head
 * (HEAD_MAX bytes) and one held blank line, whatever the input's size.
 */
#include "migrate-parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "store.h"

/* ---- From_ lines -------------------------------------------------- */

static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu",
				    "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May",
				     "Jun", "Jul", "Aug", "Sep", "Oct",
				     "Nov", "Dec"};

struct tok {
	const char *p;
	size_t n;
};

static bool tok_is(struct tok t, const char *const *names, size_t count,
		   int *idx_r)
{
	if (t.n != 3)
		return false;
	for (size_t i = 0; i < count; i++) {
		if (strncasecmp(t.p, names[i], 3) == 0) {
			*idx_r = (int)i;
			return true;
		}
	}
	return false;
}

static bool tok_num(struct tok t, size_t min, size_t max, int *v_r)
{
	if (t.n < min || t.n > max)
		return false;
	int v = 0;
	for (size_t i = 0; i < t.n; i++) {
		if (t.p[i] < '0' || t.p[i] > '9')
			return false;
		v = v * 10 + (t.p[i] - '0');
	}
	*v_r = v;
	return true;
}

/* "+hhmm" / "-hhmm": seconds east of UTC. */
static bool tok_zone(struct tok t, long *off_r)
{
	int v;
	if (t.n != 5 || (t.p[0] != '+' && t.p[0] != '-'))
		return false;
	struct tok d = {t.p + 1, 4};
	if (!tok_num(d, 4, 4, &v) || v % 100 >= 60 || v / 100 > 14)
		return false;
	*off_r = (long)((v / 100) * 3600 + (v % 100) * 60) *
		 (t.p[0] == '-' ? -1 : 1);
	return true;
}

/* A zone name ("UTC", "GMT", "PST"): letters, ignored. */
static bool tok_zone_name(struct tok t)
{
	if (t.n < 1 || t.n > 5)
		return false;
	for (size_t i = 0; i < t.n; i++)
		if (!((t.p[i] >= 'A' && t.p[i] <= 'Z') ||
		      (t.p[i] >= 'a' && t.p[i] <= 'z')))
			return false;
	return true;
}

/* "hh:mm" or "hh:mm:ss" */
static bool tok_time(struct tok t, int *h, int *m, int *s)
{
	struct tok a = {t.p, 2}, b = {t.p + 3, 2}, c = {t.p + 6, 2};
	*s = 0;
	if (t.n == 5)
		return t.p[2] == ':' && tok_num(a, 2, 2, h) &&
		       tok_num(b, 2, 2, m) && *h < 24 && *m < 60;
	return t.n == 8 && t.p[2] == ':' && t.p[5] == ':' &&
	       tok_num(a, 2, 2, h) && tok_num(b, 2, 2, m) &&
	       tok_num(c, 2, 2, s) && *h < 24 && *m < 60 && *s <= 60;
}

bool mbox_from_line(const char *line, size_t len, time_t *date_r)
{
	if (len < 5 || len > 1000 || memcmp(line, "From ", 5) != 0)
		return false;
	struct tok t[24];
	size_t nt = 0;
	for (size_t i = 5; i < len;) {
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		size_t start = i;
		while (i < len && line[i] != ' ' && line[i] != '\t')
			i++;
		if (i == start)
			break;
		if (nt == sizeof(t) / sizeof(t[0]))
			return false;
		t[nt].p = line + start;
		t[nt++].n = i - start;
	}
	/* the sender is at least one token; the date is at the end */
	for (size_t i = 1; i + 4 < nt + 1 && i + 3 < nt; i++) {
		int wd, mon, day, h, m, s, year = 0;
		if (!tok_is(t[i], wdays, 7, &wd) ||
		    !tok_is(t[i + 1], months, 12, &mon) ||
		    !tok_num(t[i + 2], 1, 2, &day) || day < 1 || day > 31 ||
		    !tok_time(t[i + 3], &h, &m, &s))
			continue;
		size_t j = i + 4;
		long off = 0;
		bool have_year = false;
		/* [zone] year [zone] */
		for (int k = 0; k < 3 && j < nt; k++, j++) {
			if (!have_year && tok_num(t[j], 4, 4, &year)) {
				have_year = true;
			} else if (tok_zone(t[j], &off) ||
				   tok_zone_name(t[j])) {
				;
			} else {
				break;
			}
		}
		if (!have_year || j != nt || year < 1970 || year > 9999)
			continue;
		struct tm tm;
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = year - 1900;
		tm.tm_mon = mon;
		tm.tm_mday = day;
		tm.tm_hour = h;
		tm.tm_min = m;
		tm.tm_sec = s;
		time_t v = timegm(&tm);
		if (v == (time_t)-1)
			continue;
		*date_r = v - off;
		return true;
	}
	return false;
}

void mbox_from_format(time_t date, struct buf *out)
{
	mbox_from_format_sender("MAILER-DAEMON", date, out);
}

void mbox_from_format_sender(const char *sender, time_t date,
			     struct buf *out)
{
	struct tm tm;
	gmtime_r(&date, &tm);
	buf_printf(out, "From %s %s %s %2d %02d:%02d:%02d %04d\n", sender,
		   wdays[tm.tm_wday], months[tm.tm_mon], tm.tm_mday,
		   tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
}

/* ---- the splitter ------------------------------------------------- */

#define HEAD_MAX 1024

struct mbox_parser {
	enum mbox_format format;
	struct mbox_callbacks cb;
	char head[HEAD_MAX];
	size_t head_len;
	bool overflow;          /* streaming the rest of a long line */
	char blank[2];          /* a held blank line ("\n" or "\r\n") */
	size_t blank_len;
	bool prev_blank;        /* the line before was blank (or none) */
	bool in_message;
	uint64_t junk;
};

struct mbox_parser *mbox_parser_create(enum mbox_format format,
				       const struct mbox_callbacks *cb)
{
	struct mbox_parser *p = xcalloc(1, sizeof(*p));
	p->format = format;
	p->cb = *cb;
	p->prev_blank = true;
	return p;
}

void mbox_parser_destroy(struct mbox_parser **p)
{
	free(*p);
	*p = NULL;
}

uint64_t mbox_parser_junk(const struct mbox_parser *p)
{
	return p->junk;
}

static void emit(struct mbox_parser *p, const char *data, size_t len)
{
	if (len == 0)
		return;
	if (p->in_message)
		p->cb.data(p->cb.ctx, data, len);
	else
		p->junk += len;
}

static void release_blank(struct mbox_parser *p)
{
	if (p->blank_len > 0) {
		emit(p, p->blank, p->blank_len);
		p->blank_len = 0;
	}
}

/* A line that is neither blank nor a From_ line (its head). */
static void plain_line(struct mbox_parser *p, const char *s, size_t len)
{
	release_blank(p);
	size_t q = 0;
	while (q < len && s[q] == '>')
		q++;
	if (q > 0 && len - q >= 5 && memcmp(s + q, "From ", 5) == 0 &&
	    (p->format == MBOX_RD || q == 1)) {
		s++;
		len--;
	}
	emit(p, s, len);
	p->prev_blank = false;
}

/* A whole line in head (with its line end when eol). */
static void whole_line(struct mbox_parser *p, bool eol)
{
	const char *s = p->head;
	size_t len = p->head_len, content = len;
	if (eol) {
		content--;
		if (content > 0 && s[content - 1] == '\r')
			content--;
	}
	if (eol && content == 0) {
		release_blank(p);
		memcpy(p->blank, s, len);
		p->blank_len = len;
		p->prev_blank = true;
		return;
	}
	time_t date;
	if (p->prev_blank && content >= 5 && memcmp(s, "From ", 5) == 0 &&
	    mbox_from_line(s, content, &date)) {
		p->blank_len = 0;    /* the separator, part of neither */
		if (p->in_message)
			p->cb.end(p->cb.ctx);
		p->in_message = true;
		p->cb.begin(p->cb.ctx, s, content, date);
		p->prev_blank = false;
		return;
	}
	plain_line(p, s, len);
}

void mbox_parser_feed(struct mbox_parser *p, const char *data, size_t len)
{
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t upto = nl != NULL ? (size_t)(nl - data) + 1 : len;
		if (p->overflow) {
			emit(p, data, upto);
			if (nl != NULL)
				p->overflow = false;
			data += upto;
			len -= upto;
			continue;
		}
		size_t room = HEAD_MAX - p->head_len;
		if (upto > room) {
			/* a long line: not blank, not a From_ line */
			memcpy(p->head + p->head_len, data, room);
			p->head_len = HEAD_MAX;
			plain_line(p, p->head, p->head_len);
			p->head_len = 0;
			p->overflow = true;
			data += room;
			len -= room;
			continue;
		}
		memcpy(p->head + p->head_len, data, upto);
		p->head_len += upto;
		data += upto;
		len -= upto;
		if (nl != NULL) {
			whole_line(p, true);
			p->head_len = 0;
		}
	}
}

void mbox_parser_finish(struct mbox_parser *p)
{
	if (p->head_len > 0 && !p->overflow)
		whole_line(p, false);
	p->head_len = 0;
	p->overflow = false;
	/* the blank line that ends the file's last message is dropped */
	p->blank_len = 0;
	if (p->in_message)
		p->cb.end(p->cb.ctx);
	p->in_message = false;
}

/* ---- header fields ------------------------------------------------ */

static bool name_is(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

static uint32_t num_u32(const char *s, size_t n, size_t *used_r)
{
	size_t i = 0;
	uint64_t v = 0;
	while (i < n && s[i] >= '0' && s[i] <= '9' && v <= UINT32_MAX) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		i++;
	}
	*used_r = i;
	return v > UINT32_MAX ? 0 : (uint32_t)v;
}

static void add_keywords(struct mbox_meta *meta, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (s[i] == ' ' || s[i] == ',' || s[i] == '\t' ||
				 s[i] == '\r' || s[i] == '\n'))
			i++;
		size_t start = i;
		while (i < n && s[i] != ' ' && s[i] != ',' && s[i] != '\t' &&
		       s[i] != '\r' && s[i] != '\n')
			i++;
		if (i == start || !migrate_keyword_valid(s + start, i - start) ||
		    meta->keyword_count >= 64)
			continue;
		bool dup = false;
		for (size_t k = 0; k < meta->keyword_count && !dup; k++)
			dup = strlen(meta->keywords[k]) == i - start &&
			      strncasecmp(meta->keywords[k], s + start,
					  i - start) == 0;
		if (dup)
			continue;
		meta->keywords = xrealloc(meta->keywords,
					  (meta->keyword_count + 1) *
						  sizeof(char *));
		meta->keywords[meta->keyword_count++] =
			xstrndup(s + start, i - start);
	}
}

static void field(struct mbox_meta *meta, const char *name, size_t nlen,
		  const char *v, size_t vlen)
{
	size_t used;
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	if (name_is(name, nlen, "Status")) {
		for (size_t i = 0; i < vlen; i++)
			if (v[i] == 'R')
				meta->flags |= STORE_FLAG_SEEN;
	} else if (name_is(name, nlen, "X-Status")) {
		for (size_t i = 0; i < vlen; i++) {
			switch (v[i]) {
			case 'A': meta->flags |= STORE_FLAG_ANSWERED; break;
			case 'F': meta->flags |= STORE_FLAG_FLAGGED; break;
			case 'T': meta->flags |= STORE_FLAG_DRAFT; break;
			case 'D': meta->flags |= STORE_FLAG_DELETED; break;
			default: break;
			}
		}
	} else if (name_is(name, nlen, "X-Keywords")) {
		add_keywords(meta, v, vlen);
	} else if (name_is(name, nlen, "X-UID")) {
		meta->uid = num_u32(v, vlen, &used);
	} else if (name_is(name, nlen, "X-IMAPbase") ||
		   name_is(name, nlen, "X-IMAP")) {
		uint32_t uv = num_u32(v, vlen, &used);
		size_t i = used;
		while (i < vlen && v[i] == ' ')
			i++;
		uint32_t next = num_u32(v + i, vlen - i, &used);
		if (uv != 0 && used > 0) {
			meta->uidvalidity = uv;
			meta->uidnext = next;
		}
		if (name_is(name, nlen, "X-IMAP"))
			meta->pseudo = true;
	}
}

static bool hidden(const char *name, size_t n)
{
	return name_is(name, n, "Status") || name_is(name, n, "X-Status") ||
	       name_is(name, n, "X-Keywords") || name_is(name, n, "X-UID") ||
	       name_is(name, n, "X-IMAPbase") || name_is(name, n, "X-IMAP") ||
	       name_is(name, n, "Content-Length");
}

void mbox_header_filter(const char *hdr, size_t len, struct buf *out,
			struct mbox_meta *meta)
{
	memset(meta, 0, sizeof(*meta));
	size_t i = 0;
	while (i < len) {
		/* one field: its first line and continuation lines */
		size_t start = i;
		do {
			const char *nl = memchr(hdr + i, '\n', len - i);
			i = nl != NULL ? (size_t)(nl - hdr) + 1 : len;
		} while (i < len && (hdr[i] == ' ' || hdr[i] == '\t'));
		const char *f = hdr + start;
		size_t flen = i - start;
		const char *colon = memchr(f, ':', flen);
		size_t nlen = colon != NULL ? (size_t)(colon - f) : 0;
		if (colon == NULL || nlen == 0 || memchr(f, ' ', nlen) != NULL ||
		    !hidden(f, nlen)) {
			buf_append(out, f, flen);
			continue;
		}
		size_t vlen = flen - nlen - 1;
		field(meta, f, nlen, colon + 1, vlen);
	}
}

void mbox_meta_free(struct mbox_meta *meta)
{
	for (size_t i = 0; i < meta->keyword_count; i++)
		free(meta->keywords[i]);
	free(meta->keywords);
	meta->keywords = NULL;
	meta->keyword_count = 0;
}
