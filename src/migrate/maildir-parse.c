/*
 * Maildir parsers (migrate-parse.h): file names and their flags,
 * dovecot-keywords, dovecot-uidlist (versions 1 and 3), folder names in
 * Maildir++ and LAYOUT=fs. Pure functions over bytes; nothing here
 * touches the file system.
 */
#include "migrate-parse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "store.h"
#include "utf7.h"

static int fail(char *err, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t size, const char *fmt, ...)
{
	if (err != NULL && size > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, size, fmt, ap);
		va_end(ap);
	}
	return -1;
}

bool migrate_keyword_valid(const char *s, size_t len)
{
	if (len == 0 || len > 200 || s[0] == '\\')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

/* ---- file names --------------------------------------------------- */

int maildir_name_parse(const char *name, size_t len, struct maildir_name *r,
		       char *err, size_t err_size)
{
	memset(r, 0, sizeof(*r));
	if (len == 0)
		return fail(err, err_size, "empty file name");
	if (name[0] == '.')
		return fail(err, err_size, "a hidden file, not a message");
	if (memchr(name, '/', len) != NULL || memchr(name, '\0', len) != NULL)
		return fail(err, err_size, "a file name with '/' or NUL");
	const char *colon = memchr(name, ':', len);
	if (colon == NULL) {
		r->base_len = len;
		return 0;
	}
	r->base_len = (size_t)(colon - name);
	if (r->base_len == 0)
		return fail(err, err_size, "no name before the info part");
	size_t ilen = len - r->base_len - 1;
	const char *info = colon + 1;
	if (ilen < 2 || info[0] != '2' || info[1] != ',')
		return fail(err, err_size, "info part \"%.*s\" is not \":2,"
			    "FLAGS\"", (int)(ilen > 20 ? 20 : ilen), info);
	for (size_t i = 2; i < ilen; i++) {
		char c = info[i];
		if (c >= 'a' && c <= 'z') {
			r->keywords |= 1u << (c - 'a');
			continue;
		}
		switch (c) {
		case 'D': r->flags |= STORE_FLAG_DRAFT; break;
		case 'F': r->flags |= STORE_FLAG_FLAGGED; break;
		case 'P': r->forwarded = true; break;
		case 'R': r->flags |= STORE_FLAG_ANSWERED; break;
		case 'S': r->flags |= STORE_FLAG_SEEN; break;
		case 'T': r->flags |= STORE_FLAG_DELETED; break;
		default:
			if (c >= 'A' && c <= 'Z')
				break;     /* a flag of another program */
			return fail(err, err_size, "flag character 0x%02x in"
				    " the info part", (unsigned char)c);
		}
	}
	return 0;
}

void maildir_info_format(unsigned flags, bool forwarded, uint32_t keywords,
			 struct buf *out)
{
	buf_append_str(out, ":2,");
	if (flags & STORE_FLAG_DRAFT)
		buf_append_char(out, 'D');
	if (flags & STORE_FLAG_FLAGGED)
		buf_append_char(out, 'F');
	if (forwarded)
		buf_append_char(out, 'P');
	if (flags & STORE_FLAG_ANSWERED)
		buf_append_char(out, 'R');
	if (flags & STORE_FLAG_SEEN)
		buf_append_char(out, 'S');
	if (flags & STORE_FLAG_DELETED)
		buf_append_char(out, 'T');
	for (int i = 0; i < MAILDIR_KEYWORDS; i++)
		if (keywords & (1u << i))
			buf_append_char(out, (char)('a' + i));
}

/* ---- lines -------------------------------------------------------- */

/* The next line of data[*pos..len) (without "\n" or "\r\n"). */
static bool next_line(const char *data, size_t len, size_t *pos,
		      const char **line_r, size_t *line_len_r)
{
	if (*pos >= len)
		return false;
	const char *s = data + *pos;
	const char *nl = memchr(s, '\n', len - *pos);
	size_t n = nl != NULL ? (size_t)(nl - s) : len - *pos;
	*pos += n + (nl != NULL);
	if (n > 0 && s[n - 1] == '\r')
		n--;
	*line_r = s;
	*line_len_r = n;
	return true;
}

/* A decimal number of at most 10 digits that fits 32 bits. */
static bool parse_u32(const char *s, size_t len, uint32_t *v_r)
{
	if (len == 0 || len > 10)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*v_r = (uint32_t)v;
	return true;
}

/* ---- dovecot-keywords --------------------------------------------- */

int maildir_keywords_parse(const char *data, size_t len,
			   struct maildir_keywords *kw, char *err,
			   size_t err_size)
{
	memset(kw, 0, sizeof(*kw));
	size_t pos = 0, n, lineno = 0;
	const char *line;
	while (next_line(data, len, &pos, &line, &n)) {
		lineno++;
		if (n == 0)
			continue;
		const char *sp = memchr(line, ' ', n);
		uint32_t idx;
		if (sp == NULL || !parse_u32(line, (size_t)(sp - line), &idx) ||
		    idx >= MAILDIR_KEYWORDS) {
			maildir_keywords_free(kw);
			return fail(err, err_size, "line %zu: not \"<0-25>"
				    " <keyword>\"", lineno);
		}
		const char *name = sp + 1;
		size_t nlen = n - (size_t)(name - line);
		if (!migrate_keyword_valid(name, nlen)) {
			maildir_keywords_free(kw);
			return fail(err, err_size, "line %zu: invalid keyword",
				    lineno);
		}
		if (kw->names[idx] != NULL) {
			maildir_keywords_free(kw);
			return fail(err, err_size, "line %zu: keyword %u given"
				    " twice", lineno, idx);
		}
		kw->names[idx] = xstrndup(name, nlen);
	}
	return 0;
}

void maildir_keywords_free(struct maildir_keywords *kw)
{
	for (int i = 0; i < MAILDIR_KEYWORDS; i++) {
		free(kw->names[i]);
		kw->names[i] = NULL;
	}
}

/* ---- dovecot-uidlist ---------------------------------------------- */

static int base_cmp(const void *a, const void *b)
{
	const struct maildir_uidrec *const *x = a, *const *y = b;
	return strcmp((*x)->base, (*y)->base);
}

/* The header of version 3: "3 V<uv> N<next> [G<guid>] [other fields]". */
static int header_v3(const char *line, size_t n, struct maildir_uidlist *ul)
{
	size_t i = 1;
	bool have_v = false, have_n = false;
	while (i < n) {
		while (i < n && line[i] == ' ')
			i++;
		size_t start = i;
		while (i < n && line[i] != ' ')
			i++;
		if (i == start)
			break;
		char key = line[start];
		const char *v = line + start + 1;
		size_t vlen = i - start - 1;
		if (key == 'V') {
			if (!parse_u32(v, vlen, &ul->uidvalidity) ||
			    ul->uidvalidity == 0)
				return -1;
			have_v = true;
		} else if (key == 'N') {
			if (!parse_u32(v, vlen, &ul->uidnext))
				return -1;
			have_n = true;
		}
	}
	return have_v && have_n ? 0 : -1;
}

int maildir_uidlist_parse(const char *data, size_t len,
			  struct maildir_uidlist *ul, char *err,
			  size_t err_size)
{
	memset(ul, 0, sizeof(*ul));
	size_t pos = 0, n, lineno = 1, cap = 0;
	const char *line;
	if (!next_line(data, len, &pos, &line, &n))
		return fail(err, err_size, "empty file");
	if (n >= 2 && line[0] == '3' && line[1] == ' ') {
		ul->version = 3;
		if (header_v3(line, n, ul) < 0)
			return fail(err, err_size, "line 1: bad version 3"
				    " header");
	} else if (n >= 2 && line[0] == '1' && line[1] == ' ') {
		ul->version = 1;
		const char *sp = memchr(line + 2, ' ', n - 2);
		if (sp == NULL ||
		    !parse_u32(line + 2, (size_t)(sp - line - 2),
			       &ul->uidvalidity) ||
		    !parse_u32(sp + 1, n - (size_t)(sp + 1 - line),
			       &ul->uidnext) ||
		    ul->uidvalidity == 0)
			return fail(err, err_size, "line 1: bad version 1"
				    " header");
	} else {
		return fail(err, err_size, "line 1: unknown version (not 1"
			    " or 3)");
	}
	uint32_t last = 0;
	while (next_line(data, len, &pos, &line, &n)) {
		lineno++;
		if (n == 0)
			continue;
		const char *sp = memchr(line, ' ', n);
		uint32_t uid;
		if (sp == NULL || !parse_u32(line, (size_t)(sp - line), &uid) ||
		    uid == 0) {
			maildir_uidlist_free(ul);
			return fail(err, err_size, "line %zu: no UID", lineno);
		}
		if (uid <= last) {
			maildir_uidlist_free(ul);
			return fail(err, err_size, "line %zu: UID %u %s", lineno,
				    uid, uid == last ? "given twice"
						     : "below the one before");
		}
		last = uid;
		const char *rest = sp + 1;
		size_t rlen = n - (size_t)(rest - line);
		const char *base;
		size_t blen;
		char *uidl = NULL;
		if (ul->version == 1) {
			base = rest;
			blen = rlen;
			const char *colon = memchr(base, ':', blen);
			if (colon != NULL)
				blen = (size_t)(colon - base);
		} else {
			/* "[<key><value> ...] :<base>" */
			const char *colon = NULL;
			size_t i = 0;
			while (i < rlen) {
				while (i < rlen && rest[i] == ' ')
					i++;
				if (i == rlen)
					break;
				if (rest[i] == ':') {
					colon = rest + i;
					break;
				}
				size_t start = i;
				while (i < rlen && rest[i] != ' ')
					i++;
				if (rest[start] == 'P' && i > start + 1 &&
				    uidl == NULL)
					uidl = xstrndup(rest + start + 1,
							i - start - 1);
			}
			if (colon == NULL) {
				free(uidl);
				maildir_uidlist_free(ul);
				return fail(err, err_size, "line %zu: no"
					    " \":<file name>\"", lineno);
			}
			base = colon + 1;
			blen = rlen - (size_t)(base - rest);
		}
		struct maildir_name mn;
		if (blen == 0 || maildir_name_parse(base, blen, &mn, NULL, 0) < 0 ||
		    mn.base_len != blen) {
			free(uidl);
			maildir_uidlist_free(ul);
			return fail(err, err_size, "line %zu: bad file name",
				    lineno);
		}
		if (ul->count == cap) {
			cap = cap ? cap * 2 : 64;
			ul->recs = xrealloc(ul->recs, cap * sizeof(*ul->recs));
		}
		struct maildir_uidrec *r = &ul->recs[ul->count++];
		r->uid = uid;
		r->base = xstrndup(base, blen);
		r->pop3_uidl = uidl;
	}
	/* lines are appended after the header is written: N may lag */
	if (last != 0 && last >= ul->uidnext) {
		if (last == UINT32_MAX) {
			maildir_uidlist_free(ul);
			return fail(err, err_size, "UID 4294967295 leaves no"
				    " UIDNEXT");
		}
		ul->uidnext = last + 1;
	}
	/* one file, one UID */
	if (ul->count > 1) {
		struct maildir_uidrec **by = xmalloc(ul->count * sizeof(*by));
		for (size_t i = 0; i < ul->count; i++)
			by[i] = &ul->recs[i];
		qsort(by, ul->count, sizeof(*by), base_cmp);
		for (size_t i = 1; i < ul->count; i++) {
			if (strcmp(by[i]->base, by[i - 1]->base) == 0) {
				uint32_t a = by[i - 1]->uid, b = by[i]->uid;
				free(by);
				maildir_uidlist_free(ul);
				return fail(err, err_size, "UIDs %u and %u name"
					    " the same file", a, b);
			}
		}
		free(by);
	}
	return 0;
}

void maildir_uidlist_free(struct maildir_uidlist *ul)
{
	for (size_t i = 0; i < ul->count; i++) {
		free(ul->recs[i].base);
		free(ul->recs[i].pop3_uidl);
	}
	free(ul->recs);
	ul->recs = NULL;
	ul->count = 0;
}

/* ---- folder names ------------------------------------------------- */

/* One component: mUTF-7 when valid (and it has a shift), else UTF-8. */
static int component(const char *s, size_t len, struct buf *out)
{
	if (len == 0 || (len == 1 && s[0] == '.') ||
	    (len == 2 && s[0] == '.' && s[1] == '.'))
		return -1;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '/')
			return -1;
	size_t mark = out->len;
	if (memchr(s, '&', len) != NULL && utf7_decode(s, len, out) == 0) {
		/* a decoded control character (U+0000 ...) is no name */
		bool ok = true;
		for (size_t i = mark; i < out->len && ok; i++)
			ok = (unsigned char)out->data[i] >= 0x20 &&
			     out->data[i] != 0x7f && out->data[i] != '/';
		if (ok)
			return 0;
	}
	out->len = mark;
	if (!utf8_valid(s, len))
		return -1;
	return buf_append(out, s, len);
}

int maildir_folder_name(const char *dir, size_t len, bool fs_layout,
			struct buf *out)
{
	char sep = fs_layout ? '/' : '.';
	if (!fs_layout) {
		if (len < 2 || dir[0] != '.')
			return -1;
		dir++;
		len--;
	}
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && dir[i] != sep)
			continue;
		if (start > 0 && buf_append_char(out, '/') < 0)
			return -1;
		if (component(dir + start, i - start, out) < 0)
			return -1;
		start = i + 1;
	}
	return 0;
}

int maildir_folder_dir(const char *name, struct buf *out)
{
	buf_append_char(out, '.');
	size_t start = 0, len = strlen(name);
	for (size_t i = 0; i <= len; i++) {
		if (i < len && name[i] != '/')
			continue;
		if (memchr(name + start, '.', i - start) != NULL)
			return -1;
		if (start > 0)
			buf_append_char(out, '.');
		if (utf7_encode(name + start, i - start, out) < 0)
			return -1;
		start = i + 1;
	}
	return 0;
}
