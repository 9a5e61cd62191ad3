/*
 * IMAP URLs (RFC 5092, with the URLAUTH parts of RFC 4467): parsing and
 * fetching. See imap-url.h.
 */
#include "imap-url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "mail.h"
#include "store.h"

static bool prefix_ci(const char *s, const char *p)
{
	return strncasecmp(s, p, strlen(p)) == 0;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* %-decodes s[0..len); NULL on a bad escape or a NUL. */
static char *pct_decode(const char *s, size_t len)
{
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (ch == '%') {
			int h, l;
			if (i + 2 >= len || (h = hexval(s[i + 1])) < 0 ||
			    (l = hexval(s[i + 2])) < 0 || (h == 0 && l == 0))
				goto fail;
			buf_append_char(&b, (char)(h * 16 + l));
			i += 2;
			continue;
		}
		if ((unsigned char)ch <= 0x20 || (unsigned char)ch >= 0x7f)
			goto fail;
		buf_append_char(&b, ch);
	}
	size_t n;
	buf_append_char(&b, '\0');
	b.len--;
	return buf_steal(&b, &n);
fail:
	buf_free(&b);
	return NULL;
}

/* nz-number (32-bit) at *p; advances. */
static bool parse_nz32(const char **p, uint32_t *v_r)
{
	const char *s = *p;
	uint64_t v = 0;
	if (*s < '1' || *s > '9')
		return false;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return false;
		s++;
	}
	*v_r = (uint32_t)v;
	*p = s;
	return true;
}

static bool parse_num32(const char **p, uint32_t *v_r)
{
	if (**p == '0' && !isdigit((unsigned char)(*p)[1])) {
		(*p)++;
		*v_r = 0;
		return true;
	}
	return parse_nz32(p, v_r);
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm). */
static bool parse_datetime(const char **p, time_t *t_r)
{
	const char *s = *p;
	int v[6];
	const char seps[] = "--T::";
	int widths[] = {4, 2, 2, 2, 2, 2};
	for (int f = 0; f < 6; f++) {
		v[f] = 0;
		for (int k = 0; k < widths[f]; k++, s++) {
			if (!isdigit((unsigned char)*s))
				return false;
			v[f] = v[f] * 10 + (*s - '0');
		}
		if (f < 5) {
			if (toupper((unsigned char)*s) != seps[f])
				return false;
			s++;
		}
	}
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	long off = 0;
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		int sign = *s == '-' ? -1 : 1;
		if (!isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]) ||
		    s[3] != ':' || !isdigit((unsigned char)s[4]) ||
		    !isdigit((unsigned char)s[5]))
			return false;
		off = sign * (((s[1] - '0') * 10 + (s[2] - '0')) * 3600L +
			      ((s[4] - '0') * 10 + (s[5] - '0')) * 60L);
		s += 6;
	} else {
		return false;
	}
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 ||
	    v[4] > 59 || v[5] > 60)
		return false;
	struct tm tm = {.tm_year = v[0] - 1900, .tm_mon = v[1] - 1,
			.tm_mday = v[2], .tm_hour = v[3], .tm_min = v[4],
			.tm_sec = v[5]};
	*t_r = timegm(&tm) - off;
	*p = s;
	return true;
}

/* enc-user / access characters: unreserved, sub-delims, %-escapes. */
static size_t span_bchars(const char *s, const char *stop)
{
	size_t n = 0;
	while (s[n] != '\0' && strchr(stop, s[n]) == NULL)
		n++;
	return n;
}

static int fail(const char **error_r, const char *why)
{
	*error_r = why;
	return -1;
}

/* After the UID (and section/partial): [;EXPIRE=..][;URLAUTH=access
 * [:mech:token]]. */
static int parse_urlauth(const char *url, const char *p, struct imap_url *u,
			 const char **error_r)
{
	if (prefix_ci(p, ";EXPIRE=")) {
		p += 8;
		if (!parse_datetime(&p, &u->expire))
			return fail(error_r, "Invalid EXPIRE date-time");
	}
	if (*p == '\0')
		return 0;
	if (!prefix_ci(p, ";URLAUTH="))
		return fail(error_r, "Unexpected text after the message");
	p += 9;
	size_t n = span_bchars(p, ":/;");
	if (n == 0)
		return fail(error_r, "Missing URLAUTH access identifier");
	char *access = pct_decode(p, n);
	if (access == NULL)
		return fail(error_r, "Invalid URLAUTH access identifier");
	u->access = access;
	if (!(prefix_ci(access, "submit+") && access[7] != '\0') &&
	    !(prefix_ci(access, "user+") && access[5] != '\0') &&
	    strcasecmp(access, "authuser") != 0 &&
	    strcasecmp(access, "anonymous") != 0)
		return fail(error_r, "Unknown URLAUTH access identifier");
	p += n;
	u->rump_len = (size_t)(p - url);
	if (*p == '\0')
		return 0;
	if (*p++ != ':')
		return fail(error_r, "Invalid URLAUTH verifier");
	n = span_bchars(p, ":");
	if (n == 0 || p[n] != ':')
		return fail(error_r, "Invalid URLAUTH mechanism");
	u->mechanism = xstrndup(p, n);
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '.')
			return fail(error_r, "Invalid URLAUTH mechanism");
	p += n + 1;
	n = strlen(p);
	if (n < 32)
		return fail(error_r, "URLAUTH token too short");
	for (size_t i = 0; i < n; i++)
		if (hexval(p[i]) < 0)
			return fail(error_r, "URLAUTH token is not hexadecimal");
	u->token = xstrdup(p);
	return 0;
}

int imap_url_parse(const char *url, bool absolute, struct imap_url *u_r,
		   const char **error_r)
{
	struct imap_url *u = u_r;
	memset(u, 0, sizeof(*u));
	const char *p = url;
	if (strlen(url) > 8192) {
		*error_r = "URL too long";
		goto fail;
	}
	if (prefix_ci(p, "imap://")) {
		p += 7;
		size_t auth_len = span_bchars(p, "/");
		/* the last "@" ends the userinfo (an "@" of the user's
		 * address is written %40) */
		const char *at = NULL;
		for (size_t i = 0; i < auth_len; i++)
			if (p[i] == '@')
				at = p + i;
		if (at != NULL) {
			size_t ulen = (size_t)(at - p);
			const char *semi = memchr(p, ';', ulen);
			if (semi != NULL)
				ulen = (size_t)(semi - p);   /* ;AUTH=... */
			u->user = pct_decode(p, ulen);
			if (u->user == NULL || u->user[0] == '\0') {
				*error_r = "Invalid user in URL";
				goto fail;
			}
			p = at + 1;
			auth_len = span_bchars(p, "/");
		}
		if (auth_len == 0) {
			*error_r = "Missing host in URL";
			goto fail;
		}
		u->host = xstrndup(p, auth_len);
		p += auth_len;
	} else if (absolute || *p != '/') {
		*error_r = "Not an imap:// URL";
		goto fail;
	}
	if (*p++ != '/') {
		*error_r = "Missing mailbox in URL";
		goto fail;
	}
	/* the mailbox: up to ";UIDVALIDITY=" or "/;" */
	const char *end = p;
	while (*end != '\0' && !prefix_ci(end, ";UIDVALIDITY=") &&
	       !(end[0] == '/' && end[1] == ';'))
		end++;
	if (end == p || (u->mailbox = pct_decode(p, (size_t)(end - p))) == NULL) {
		*error_r = "Invalid mailbox in URL";
		goto fail;
	}
	p = end;
	if (prefix_ci(p, ";UIDVALIDITY=")) {
		p += 13;
		if (!parse_nz32(&p, &u->uidvalidity)) {
			*error_r = "Invalid UIDVALIDITY in URL";
			goto fail;
		}
	}
	if (!prefix_ci(p, "/;UID=")) {
		*error_r = "The URL names no message (;UID=)";
		goto fail;
	}
	p += 6;
	if (!parse_nz32(&p, &u->uid)) {
		*error_r = "Invalid UID in URL";
		goto fail;
	}
	if (prefix_ci(p, "/;SECTION=")) {
		p += 10;
		size_t n = span_bchars(p, "/;");
		if (n == 0 || (u->section = pct_decode(p, n)) == NULL) {
			*error_r = "Invalid SECTION in URL";
			goto fail;
		}
		p += n;
	}
	if (prefix_ci(p, "/;PARTIAL=")) {
		p += 10;
		uint32_t off, len = 0;
		if (!parse_num32(&p, &off) ||
		    (*p == '.' && (p++, !parse_nz32(&p, &len)))) {
			*error_r = "Invalid PARTIAL in URL";
			goto fail;
		}
		u->partial = true;
		u->partial_offset = off;
		u->partial_length = len;
	}
	if (parse_urlauth(url, p, u, error_r) < 0)
		goto fail;
	return 0;
fail:
	imap_url_free(u);
	return -1;
}

void imap_url_free(struct imap_url *u)
{
	free(u->user);
	free(u->host);
	free(u->mailbox);
	free(u->section);
	free(u->access);
	free(u->mechanism);
	free(u->token);
	memset(u, 0, sizeof(*u));
}

static int url_error(struct store_error *err, enum store_error_kind kind,
		     const char *msg)
{
	if (err != NULL) {
		err->kind = kind;
		snprintf(err->msg, sizeof(err->msg), "%s", msg);
	}
	return -1;
}

/* The cached part map of uid (a copy, caller frees). */
static int part_map(struct store_user *user, const char *mailbox, uint32_t uid,
		    void **parts_r, size_t *len_r, struct store_error *err)
{
	struct store_uid_range r = {uid, uid};
	struct store_fetch *f;
	const struct store_msg *m;
	*parts_r = NULL;
	*len_r = 0;
	if (store_fetch_begin(user, mailbox, &r, 1, STORE_FETCH_PARTS, &f, err) < 0)
		return -1;
	int ret = store_fetch_next(f, &m, err);
	if (ret == 1 && m->parts != NULL) {
		*parts_r = xmalloc(m->parts_len ? m->parts_len : 1);
		if (m->parts_len > 0)
			memcpy(*parts_r, m->parts, m->parts_len);
		*len_r = m->parts_len;
	}
	store_fetch_end(&f);
	if (ret == 0)
		url_error(err, STORE_ERR_NOTFOUND, "No such message");
	return ret == 1 ? 0 : -1;
}

int imap_url_fetch(struct store_user *user, const char *store_mailbox,
		   const struct imap_url *u, char **data_r, size_t *len_r,
		   struct store_error *err)
{
	struct store_mailbox_info info;
	if (store_mailbox_status(user, store_mailbox, &info, err) < 0)
		return -1;
	uint32_t uv = info.uidvalidity;
	store_mailbox_info_free(&info);
	if (u->uidvalidity != 0 && u->uidvalidity != uv)
		return url_error(err, STORE_ERR_NOTFOUND,
				       "The mailbox's UIDVALIDITY changed");
	struct store_blob blob;
	if (store_blob_open(user, store_mailbox, u->uid, &blob, err) < 0)
		return -1;
	const char *p = blob.data;
	size_t n = blob.len;
	struct mail_section sec;
	memset(&sec, 0, sizeof(sec));
	if (u->section != NULL) {
		struct mail_section_spec spec;
		void *parts;
		size_t parts_len;
		int r = mail_section_parse(u->section, strlen(u->section), &spec);
		if (r < 0) {
			store_blob_close(&blob);
			return url_error(err, STORE_ERR_INVALID,
					       "Invalid section in URL");
		}
		r = part_map(user, store_mailbox, u->uid, &parts, &parts_len, err);
		if (r == 0 && mail_section_get(blob.data, blob.len, parts,
					       parts_len, &spec, &sec) < 0) {
			r = url_error(err, STORE_ERR_INVALID,
					    "The message's parts cannot be read");
		}
		free(parts);
		mail_section_spec_free(&spec);
		if (r < 0) {
			store_blob_close(&blob);
			return -1;
		}
		p = sec.ptr != NULL ? sec.ptr : "";
		n = sec.len;
	}
	if (u->partial) {
		uint64_t off = u->partial_offset < n ? u->partial_offset : n;
		uint64_t len = n - off;
		if (u->partial_length != 0 && u->partial_length < len)
			len = u->partial_length;
		p += off;
		n = (size_t)len;
	}
	*data_r = xmalloc(n ? n : 1);
	if (n > 0)
		memcpy(*data_r, p, n);
	*len_r = n;
	mail_section_free(&sec);
	store_blob_close(&blob);
	return 0;
}
