/*
 * Email/set, Email/import and Email/copy (RFC 8621 4.6-4.8). A create
 * builds the RFC 5322 message from the JSON (header properties in every
 * form, bodyStructure or textBody/htmlBody/attachments, text from
 * bodyValues, attachments from blobs) with nothing a client can inject:
 * names and values with CR or LF, bad addresses or keywords are
 * invalidProperties. Every create, update and destroy of one call goes
 * to the store as one transaction (store_email_tx), so a draft's new
 * version and the destroy of the old one commit together, and nothing
 * of a failed create is kept.
 */
#include "jmap-mime.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "buf.h"
#include "mail.h"

/* ---- encoders ---------------------------------------------------------- */

static void base64_lines(struct buf *out, const unsigned char *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t col = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
			     i + 1 < n ? tab[(v >> 6) & 63] : '=',
			     i + 2 < n ? tab[v & 63] : '='};
		buf_append(out, q, 4);
		col += 4;
		if (col >= 76) {
			buf_append_str(out, "\r\n");
			col = 0;
		}
	}
	if (col > 0)
		buf_append_str(out, "\r\n");
}

static void base64_plain(struct buf *out, const char *s, size_t n)
{
	struct buf tmp;
	buf_init(&tmp, 0);
	base64_lines(&tmp, (const unsigned char *)s, n);
	for (size_t i = 0; i < tmp.len; i++)
		if (tmp.data[i] != '\r' && tmp.data[i] != '\n')
			buf_append_char(out, tmp.data[i]);
	buf_free(&tmp);
}

/* Quoted-printable (RFC 2045 6.7) of LF- or CRLF-ended text, CRLF out. */
static void qp_encode(struct buf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
			continue;
		if (c == '\n') {
			/* trailing blanks before a line end must be encoded */
			buf_append_str(out, "\r\n");
			col = 0;
			continue;
		}
		bool next_eol = i + 1 >= n || s[i + 1] == '\n' ||
				(s[i + 1] == '\r' && i + 2 < n && s[i + 2] == '\n');
		bool lit = (c >= 33 && c <= 126 && c != '=') ||
			   ((c == ' ' || c == '\t') && !next_eol);
		size_t w = lit ? 1 : 3;
		if (col + w > 75) {
			buf_append_str(out, "=\r\n");
			col = 0;
		}
		if (lit) {
			buf_append_char(out, (char)c);
		} else {
			char e[3] = {'=', hex[c >> 4], hex[c & 15]};
			buf_append(out, e, 3);
		}
		col += w;
	}
	if (col > 0)
		buf_append_str(out, "\r\n");
}

static bool ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

static bool has_crlf(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/* An unstructured value: as is when it is plain ASCII, else RFC 2047
 * encoded words of whole UTF-8 characters. */
static void encode_words(struct buf *out, const char *s)
{
	if (ascii(s) && strstr(s, "=?") == NULL) {
		buf_append_str(out, s);
		return;
	}
	size_t n = strlen(s), i = 0;
	bool first = true;
	while (i < n) {
		size_t take = 0;
		/* at most 45 bytes a word: 60 base64 chars, lines stay short */
		while (i + take < n && take < 45) {
			size_t k = 1;
			unsigned char c = (unsigned char)s[i + take];
			if (c >= 0xf0)
				k = 4;
			else if (c >= 0xe0)
				k = 3;
			else if (c >= 0xc0)
				k = 2;
			if (take + k > 45 && take > 0)
				break;
			take += k;
		}
		if (i + take > n)
			take = n - i;
		if (!first)
			buf_append_str(out, "\r\n ");
		buf_append_str(out, "=?UTF-8?B?");
		base64_plain(out, s + i, take);
		buf_append_str(out, "?=");
		first = false;
		i += take;
	}
}

static bool email_ok(const char *e)
{
	if (e == NULL || has_crlf(e) || strlen(e) > 320)
		return false;
	const char *at = strrchr(e, '@');
	if (at == NULL || at == e || at[1] == '\0')
		return false;
	for (const char *p = e; *p; p++)
		if (*p == ' ' || *p == '<' || *p == '>' || *p == ',' ||
		    *p == ';' || *p == '"' || *p == '\t' || (unsigned char)*p < 0x20)
			return false;
	return true;
}

/* One EmailAddress object; false if it is not a valid one. */
static bool address_put(struct buf *out, json_t *a)
{
	const char *email = json_string_value(json_object_get(a, "email"));
	json_t *nm = json_object_get(a, "name");
	const char *name = json_string_value(nm);
	if (!json_is_object(a) || !email_ok(email) ||
	    (nm != NULL && !json_is_null(nm) && name == NULL) ||
	    (name != NULL && has_crlf(name)))
		return false;
	if (name != NULL && name[0] != '\0') {
		if (!ascii(name)) {
			encode_words(out, name);
		} else {
			buf_append_char(out, '"');
			for (const char *p = name; *p; p++) {
				if (*p == '"' || *p == '\\')
					buf_append_char(out, '\\');
				buf_append_char(out, *p);
			}
			buf_append_char(out, '"');
		}
		buf_append_char(out, ' ');
	}
	buf_printf(out, "<%s>", email);
	return true;
}

static bool addresses_put(struct buf *out, json_t *list)
{
	if (!json_is_array(list))
		return false;
	size_t i;
	json_t *a;
	json_array_foreach(list, i, a) {
		if (i > 0)
			buf_append_str(out, ",\r\n ");
		if (!address_put(out, a))
			return false;
	}
	return true;
}

static bool grouped_put(struct buf *out, json_t *groups)
{
	if (!json_is_array(groups))
		return false;
	size_t i;
	json_t *g;
	json_array_foreach(groups, i, g) {
		json_t *nm = json_object_get(g, "name");
		json_t *addrs = json_object_get(g, "addresses");
		if (!json_is_object(g) || !json_is_array(addrs))
			return false;
		if (i > 0)
			buf_append_str(out, ",\r\n ");
		if (json_is_string(nm)) {
			const char *n = json_string_value(nm);
			if (has_crlf(n) || strpbrk(n, ":;<>@,\"") != NULL)
				return false;
			encode_words(out, n);
			buf_append_str(out, ": ");
			if (!addresses_put(out, addrs))
				return false;
			buf_append_char(out, ';');
		} else if (json_is_null(nm) || nm == NULL) {
			if (!addresses_put(out, addrs))
				return false;
		} else {
			return false;
		}
	}
	return true;
}

static bool ids_put(struct buf *out, json_t *ids)
{
	if (!json_is_array(ids) || json_array_size(ids) == 0)
		return false;
	size_t i;
	json_t *x;
	json_array_foreach(ids, i, x) {
		const char *s = json_string_value(x);
		if (s == NULL || s[0] == '\0' || strpbrk(s, "<> \t\r\n") ||
		    strchr(s, '@') == NULL)
			return false;
		buf_printf(out, "%s<%s>", i ? " " : "", s);
	}
	return true;
}

static bool date_put(struct buf *out, json_t *v)
{
	const char *s = json_string_value(v);
	time_t t;
	if (!jmap_utcdate_parse(s, &t))
		return false;
	/* keep the offset the client gave */
	int off = 0;
	const char *z = s + strlen(s) - 6;
	if (strlen(s) >= 25 && (z[0] == '+' || z[0] == '-')) {
		int h = atoi(z + 1), m = atoi(z + 4);
		off = (h * 60 + m) * (z[0] == '-' ? -1 : 1);
	}
	time_t local = t + (time_t)off * 60;
	struct tm tm;
	gmtime_r(&local, &tm);
	char d[64];
	strftime(d, sizeof(d), "%a, %d %b %Y %H:%M:%S", &tm);
	int a = off < 0 ? -off : off;
	buf_printf(out, "%s %c%02d%02d", d, off < 0 ? '-' : '+', a / 60, a % 60);
	return true;
}

static bool urls_put(struct buf *out, json_t *urls)
{
	if (!json_is_array(urls))
		return false;
	size_t i;
	json_t *x;
	json_array_foreach(urls, i, x) {
		const char *s = json_string_value(x);
		if (s == NULL || strpbrk(s, "<> \t\r\n"))
			return false;
		buf_printf(out, "%s<%s>", i ? ", " : "", s);
	}
	return true;
}

/* A header field value in a form (the inverse of jmime_form). */
static bool form_put(struct buf *out, json_t *v, enum jmime_form f)
{
	switch (f) {
	case JMIME_RAW: {
		const char *s = json_string_value(v);
		/* raw may fold (CRLF + WSP) but must not end a field */
		if (s == NULL)
			return false;
		for (const char *p = s; *p; p++)
			if ((*p == '\n' && (p == s || p[-1] != '\r')) ||
			    (*p == '\r' && (p[1] != '\n' ||
					    (p[2] != ' ' && p[2] != '\t'))))
				return false;
		buf_append_str(out, s[0] == ' ' ? s + 1 : s);
		return true;
	}
	case JMIME_TEXT:
		if (!json_is_string(v) || has_crlf(json_string_value(v)))
			return false;
		encode_words(out, json_string_value(v));
		return true;
	case JMIME_ADDRESSES:
		return addresses_put(out, v);
	case JMIME_GROUPED:
		return grouped_put(out, v);
	case JMIME_MESSAGE_IDS:
		return ids_put(out, v);
	case JMIME_DATE:
		return date_put(out, v);
	case JMIME_URLS:
		return urls_put(out, v);
	}
	return false;
}

static bool name_ok(const char *n)
{
	if (n == NULL || n[0] == '\0' || strlen(n) > 200)
		return false;
	for (const unsigned char *p = (const unsigned char *)n; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == ':')
			return false;
	return true;
}

/* ---- building a message ------------------------------------------------ */

struct mbuild {
	struct jmap_req *req;
	json_t *values;          /* bodyValues */
	json_t *err;             /* the SetError, once something is wrong */
	json_t *missing_blobs;
	unsigned boundary;
	char seed[17];
};

static void fail(struct mbuild *b, const char *prop, const char *why)
{
	if (b->err == NULL)
		b->err = jmap_set_error_props("invalidProperties", why, prop);
}

/* header:Name[:form] properties of an object (Email or body part) into
 * out; names_r collects the field names given (lowercase, for
 * conflicts). */
static void header_props(struct mbuild *b, json_t *obj, struct buf *out,
			 json_t *names)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		char name[256];
		enum jmime_form f;
		bool all;
		if (strncmp(k, "header:", 7) != 0)
			continue;
		if (!jmime_header_prop(k, name, sizeof(name), &f, &all) ||
		    !name_ok(name)) {
			fail(b, k, "not a header field property");
			return;
		}
		char low[256];
		for (size_t i = 0; i <= strlen(name); i++)
			low[i] = (char)tolower((unsigned char)name[i]);
		if (json_object_get(names, low) != NULL) {
			fail(b, k, "the field is given twice");
			return;
		}
		json_object_set_new(names, low, json_true());
		if (strncasecmp(name, "Content-", 8) == 0 &&
		    strcasecmp(name, "Content-Language") != 0 &&
		    strcasecmp(name, "Content-Location") != 0) {
			fail(b, k, "Content-* fields come from the body part");
			return;
		}
		json_t *vals = all ? v : NULL;
		size_t n = all ? json_array_size(v) : 1;
		if (all && !json_is_array(v)) {
			fail(b, k, "an array is needed with :all");
			return;
		}
		for (size_t i = 0; i < n; i++) {
			json_t *x = all ? json_array_get(vals, i) : v;
			if (json_is_null(x))
				continue;
			buf_printf(out, "%s: ", name);
			if (!form_put(out, x, f)) {
				fail(b, k, "not a valid value");
				return;
			}
			buf_append_str(out, "\r\n");
		}
	}
}

static void new_boundary(struct mbuild *b, char out[64])
{
	snprintf(out, 64, "=_loft_%s_%u", b->seed, ++b->boundary);
}

static void part_write(struct mbuild *b, json_t *part, struct buf *out,
		       int depth);

/* The Content-* fields and body of a leaf part. */
static void leaf_write(struct mbuild *b, json_t *part, struct buf *out)
{
	const char *pid = json_string_value(json_object_get(part, "partId"));
	const char *blob_id = json_string_value(json_object_get(part, "blobId"));
	const char *type = json_string_value(json_object_get(part, "type"));
	const char *charset = json_string_value(json_object_get(part, "charset"));
	const char *name = json_string_value(json_object_get(part, "name"));
	const char *disp = json_string_value(json_object_get(part, "disposition"));
	const char *cid = json_string_value(json_object_get(part, "cid"));
	const char *loc = json_string_value(json_object_get(part, "location"));
	json_t *lang = json_object_get(part, "language");
	if ((pid == NULL) == (blob_id == NULL)) {
		fail(b, "partId", "a part has either partId or blobId");
		return;
	}
	const char *strs[] = {type, charset, name, disp, cid, loc};
	for (size_t i = 0; i < 6; i++)
		if (strs[i] != NULL && has_crlf(strs[i])) {
			fail(b, "type", "no line breaks in part properties");
			return;
		}
	if (type != NULL && (strchr(type, '/') == NULL || strpbrk(type, " ;\"") ||
			     strncasecmp(type, "multipart/", 10) == 0)) {
		fail(b, "type", "not a leaf media type");
		return;
	}
	if (disp != NULL && strpbrk(disp, " ;\"")) {
		fail(b, "disposition", "not a disposition");
		return;
	}
	if (cid != NULL && strpbrk(cid, "<> \t\"")) {
		fail(b, "cid", "not a Content-ID");
		return;
	}
	struct buf body;
	buf_init(&body, 0);
	const char *cte = NULL;
	if (pid != NULL) {
		/* text from bodyValues */
		json_t *bv = json_object_get(b->values, pid);
		const char *text = json_string_value(json_object_get(bv, "value"));
		if (text == NULL || json_is_true(json_object_get(bv, "isTruncated")) ||
		    json_is_true(json_object_get(bv, "isEncodingProblem"))) {
			fail(b, "bodyValues", "no usable value for this partId");
			buf_free(&body);
			return;
		}
		if (type == NULL)
			type = "text/plain";
		if (strncasecmp(type, "text/", 5) != 0) {
			fail(b, "type", "a partId part is text");
			buf_free(&body);
			return;
		}
		if (charset != NULL && strcasecmp(charset, "utf-8") != 0) {
			fail(b, "charset", "text parts are UTF-8");
			buf_free(&body);
			return;
		}
		charset = "utf-8";
		qp_encode(&body, text, strlen(text));
		cte = "quoted-printable";
	} else {
		struct jmap_blob blob;
		struct store_error err;
		const char *rid = jmap_resolve_id(b->req, blob_id);
		if (rid == NULL || jmap_blob_open(b->req->j, b->req->user, rid,
						  &blob, &err) < 0) {
			if (b->missing_blobs == NULL)
				b->missing_blobs = json_array();
			json_array_append_new(b->missing_blobs,
					      json_string(blob_id));
			buf_free(&body);
			return;
		}
		if (type == NULL)
			type = blob.type && strncasecmp(blob.type, "multipart/", 10)
				       ? blob.type
				       : "application/octet-stream";
		if (strcasecmp(type, "message/rfc822") == 0) {
			/* RFC 2046 5.2.1: never base64 */
			buf_append(&body, blob.data, blob.len);
			if (blob.len > 0 && blob.data[blob.len - 1] != '\n')
				buf_append_str(&body, "\r\n");
			cte = "8bit";
		} else {
			base64_lines(&body, (const unsigned char *)blob.data,
				     blob.len);
			cte = "base64";
		}
		type = xstrdup(type);
		jmap_blob_close(&blob);
	}
	buf_printf(out, "Content-Type: %s", type);
	if (charset != NULL)
		buf_printf(out, "; charset=%s", charset);
	if (name != NULL && disp == NULL) {
		buf_append_str(out, ";\r\n name=\"");
		encode_words(out, name);
		buf_append_str(out, "\"");
	}
	buf_append_str(out, "\r\n");
	if (disp != NULL || name != NULL) {
		buf_printf(out, "Content-Disposition: %s",
			   disp ? disp : "attachment");
		if (name != NULL) {
			/* RFC 2231 for any name that is not plain ASCII */
			if (ascii(name) && strpbrk(name, "\"\\") == NULL) {
				buf_printf(out, ";\r\n filename=\"%s\"", name);
			} else {
				buf_append_str(out, ";\r\n filename*=UTF-8''");
				for (const unsigned char *p =
					     (const unsigned char *)name; *p; p++) {
					if ((*p >= 'a' && *p <= 'z') ||
					    (*p >= 'A' && *p <= 'Z') ||
					    (*p >= '0' && *p <= '9') ||
					    strchr("!#$&+-.^_`|~", *p))
						buf_append_char(out, (char)*p);
					else
						buf_printf(out, "%%%02X", *p);
				}
			}
		}
		buf_append_str(out, "\r\n");
	}
	if (cid != NULL)
		buf_printf(out, "Content-ID: <%s>\r\n", cid);
	if (loc != NULL)
		buf_printf(out, "Content-Location: %s\r\n", loc);
	if (json_is_array(lang) && json_array_size(lang) > 0) {
		buf_append_str(out, "Content-Language: ");
		size_t i;
		json_t *x;
		json_array_foreach(lang, i, x) {
			const char *l = json_string_value(x);
			if (l == NULL || strpbrk(l, " ,\r\n")) {
				fail(b, "language", "not a language tag");
				break;
			}
			buf_printf(out, "%s%s", i ? ", " : "", l);
		}
		buf_append_str(out, "\r\n");
	}
	buf_printf(out, "Content-Transfer-Encoding: %s\r\n\r\n", cte);
	buf_append(out, body.data ? body.data : "", body.len);
	if (pid == NULL)
		free((char *)type);
	buf_free(&body);
}

static void multi_write(struct mbuild *b, const char *subtype, json_t *kids,
			struct buf *out, int depth)
{
	char bnd[64];
	new_boundary(b, bnd);
	buf_printf(out, "Content-Type: multipart/%s;\r\n boundary=\"%s\"\r\n\r\n",
		   subtype, bnd);
	size_t i;
	json_t *k;
	json_array_foreach(kids, i, k) {
		buf_printf(out, "--%s\r\n", bnd);
		part_write(b, k, out, depth + 1);
		if (b->err != NULL)
			return;
	}
	buf_printf(out, "--%s--\r\n", bnd);
}

static void part_write(struct mbuild *b, json_t *part, struct buf *out,
		       int depth)
{
	if (!json_is_object(part) || depth > 20) {
		fail(b, "bodyStructure", "not an EmailBodyPart");
		return;
	}
	const char *k;
	json_t *v;
	json_object_foreach(part, k, v) {
		static const char *const ok[] = {
			"partId", "blobId", "size", "name", "type", "charset",
			"disposition", "cid", "language", "location", "subParts",
			NULL};
		bool known = strncmp(k, "header:", 7) == 0;
		for (const char *const *p = ok; *p && !known; p++)
			known = strcmp(*p, k) == 0;
		if (!known || strcmp(k, "headers") == 0) {
			fail(b, k, "not settable on a body part");
			return;
		}
	}
	json_t *names = json_object();
	header_props(b, part, out, names);
	json_decref(names);
	if (b->err != NULL)
		return;
	json_t *subs = json_object_get(part, "subParts");
	const char *type = json_string_value(json_object_get(part, "type"));
	if (subs != NULL) {
		if (!json_is_array(subs) || type == NULL ||
		    strncasecmp(type, "multipart/", 10) != 0 ||
		    strpbrk(type, " ;\"\r\n")) {
			fail(b, "subParts", "subParts need a multipart type");
			return;
		}
		multi_write(b, type + 10, subs, out, depth);
	} else {
		leaf_write(b, part, out);
	}
}

/* textBody/htmlBody/attachments (RFC 8621 4.6): alternative for the two
 * bodies, related for inline parts with a cid, mixed for attachments. */
static json_t *structure_from_lists(struct mbuild *b, json_t *email)
{
	json_t *text = json_object_get(email, "textBody");
	json_t *html = json_object_get(email, "htmlBody");
	json_t *att = json_object_get(email, "attachments");
	if ((text && (!json_is_array(text) || json_array_size(text) > 1)) ||
	    (html && (!json_is_array(html) || json_array_size(html) > 1)) ||
	    (att && !json_is_array(att))) {
		fail(b, "textBody", "at most one textBody and one htmlBody part");
		return NULL;
	}
	json_t *t = json_array_get(text, 0), *h = json_array_get(html, 0);
	if (t != NULL && json_object_get(t, "type") == NULL)
		json_object_set_new(t, "type", json_string("text/plain"));
	if (h != NULL && json_object_get(h, "type") == NULL)
		json_object_set_new(h, "type", json_string("text/html"));
	json_t *body;
	if (t != NULL && h != NULL)
		body = json_pack("{s:s,s:[O,O]}", "type", "multipart/alternative",
				 "subParts", t, h);
	else if (t != NULL || h != NULL)
		body = json_incref(t ? t : h);
	else
		body = json_pack("{s:s,s:s}", "type", "text/plain", "partId",
				 "\x01empty");
	json_t *inl = json_array(), *rest = json_array();
	size_t i;
	json_t *a;
	json_array_foreach(att, i, a) {
		const char *d = json_string_value(json_object_get(a, "disposition"));
		bool is_inline = h != NULL && d != NULL &&
				 strcasecmp(d, "inline") == 0 &&
				 json_is_string(json_object_get(a, "cid"));
		json_array_append(is_inline ? inl : rest, a);
	}
	if (json_array_size(inl) > 0) {
		json_array_insert_new(inl, 0, body);
		body = json_pack("{s:s,s:o}", "type", "multipart/related",
				 "subParts", inl);
	} else {
		json_decref(inl);
	}
	if (json_array_size(rest) > 0) {
		json_array_insert_new(rest, 0, body);
		body = json_pack("{s:s,s:o}", "type", "multipart/mixed",
				 "subParts", rest);
	} else {
		json_decref(rest);
	}
	return body;
}

static const char *const create_props[] = {
	"mailboxIds", "keywords", "receivedAt", "messageId", "inReplyTo",
	"references", "sender", "from", "to", "cc", "bcc", "replyTo",
	"subject", "sentAt", "bodyStructure", "bodyValues", "textBody",
	"htmlBody", "attachments", NULL,
};

static const struct {
	const char *prop, *field;
	enum jmime_form form;
} conv[] = {
	{"from", "From", JMIME_ADDRESSES},
	{"sender", "Sender", JMIME_ADDRESSES},
	{"replyTo", "Reply-To", JMIME_ADDRESSES},
	{"to", "To", JMIME_ADDRESSES},
	{"cc", "Cc", JMIME_ADDRESSES},
	{"bcc", "Bcc", JMIME_ADDRESSES},
	{"subject", "Subject", JMIME_TEXT},
	{"sentAt", "Date", JMIME_DATE},
	{"messageId", "Message-ID", JMIME_MESSAGE_IDS},
	{"inReplyTo", "In-Reply-To", JMIME_MESSAGE_IDS},
	{"references", "References", JMIME_MESSAGE_IDS},
};

/* Builds the message of an Email create object; NULL + *err_r (a
 * SetError) when it cannot be made. */
static char *build_message(struct jmap_req *req, json_t *email, size_t *len_r,
			   json_t **err_r)
{
	struct mbuild b;
	memset(&b, 0, sizeof(b));
	b.req = req;
	b.values = json_object_get(email, "bodyValues");
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		memset(rnd, 7, sizeof(rnd));
	for (int i = 0; i < 8; i++)
		snprintf(b.seed + 2 * i, 3, "%02x", rnd[i]);
	const char *k;
	json_t *v;
	json_object_foreach(email, k, v) {
		bool ok = strncmp(k, "header:", 7) == 0;
		for (const char *const *p = create_props; *p && !ok; p++)
			ok = strcmp(*p, k) == 0;
		if (!ok) {
			*err_r = jmap_set_error_props("invalidProperties",
						      strcmp(k, "headers") == 0
							      ? "set header fields as header:Name properties"
							      : "cannot be set",
						      k);
			return NULL;
		}
	}
	if (b.values != NULL && !json_is_object(b.values)) {
		*err_r = jmap_set_error_props("invalidProperties", NULL,
					      "bodyValues");
		return NULL;
	}
	struct buf out;
	buf_init(&out, 0);
	json_t *names = json_object();
	for (size_t i = 0; i < sizeof(conv) / sizeof(*conv); i++) {
		json_t *x = json_object_get(email, conv[i].prop);
		if (x == NULL || json_is_null(x))
			continue;
		char low[64];
		snprintf(low, sizeof(low), "%s", conv[i].field);
		for (char *p = low; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		json_object_set_new(names, low, json_true());
		buf_printf(&out, "%s: ", conv[i].field);
		if (!form_put(&out, x, conv[i].form)) {
			fail(&b, conv[i].prop, "not a valid value");
			break;
		}
		buf_append_str(&out, "\r\n");
	}
	if (b.err == NULL)
		header_props(&b, email, &out, names);
	if (b.err == NULL && json_object_get(names, "date") == NULL) {
		char d[64];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(d, sizeof(d), "%a, %d %b %Y %H:%M:%S +0000", &tm);
		buf_printf(&out, "Date: %s\r\n", d);
	}
	if (b.err == NULL && json_object_get(names, "message-id") == NULL) {
		char host[256] = "localhost";
		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		buf_printf(&out, "Message-ID: <%s.%lld@%s>\r\n", b.seed,
			   (long long)time(NULL), host);
	}
	json_decref(names);
	if (b.err == NULL)
		buf_append_str(&out, "MIME-Version: 1.0\r\n");
	json_t *bs = json_object_get(email, "bodyStructure");
	bool lists = json_object_get(email, "textBody") != NULL ||
		     json_object_get(email, "htmlBody") != NULL ||
		     json_object_get(email, "attachments") != NULL;
	if (b.err == NULL && bs != NULL && lists)
		fail(&b, "bodyStructure",
		     "bodyStructure or textBody/htmlBody/attachments");
	json_t *built = NULL;
	if (b.err == NULL && bs == NULL) {
		/* an empty body needs an empty value to point at */
		json_t *vals = b.values ? json_deep_copy(b.values) : json_object();
		json_object_set_new(vals, "\x01empty",
				    json_pack("{s:s}", "value", ""));
		b.values = vals;
		built = structure_from_lists(&b, email);
		bs = built;
	}
	if (b.err == NULL && bs != NULL)
		part_write(&b, bs, &out, 0);
	if (built != NULL)
		json_decref(b.values);
	json_decref(built);
	if (b.err == NULL && b.missing_blobs != NULL) {
		b.err = jmap_set_error("blobNotFound", NULL);
		json_object_set(b.err, "notFound", b.missing_blobs);
	}
	json_decref(b.missing_blobs);
	if (b.err == NULL && out.len > req->j->set.max_message_size)
		b.err = jmap_set_error("tooLarge", "larger than the largest"
				       " message this server takes");
	if (b.err != NULL) {
		buf_free(&out);
		*err_r = b.err;
		return NULL;
	}
	return buf_steal(&out, len_r);
}

/* ---- keywords and mailboxes -------------------------------------------- */

static bool keyword_ok(const char *k)
{
	if (k == NULL || *k == '\0' || strlen(k) > 255)
		return false;
	for (const unsigned char *p = (const unsigned char *)k; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || strchr("(){]%*\"\\", *p))
			return false;
	return true;
}

static unsigned keyword_flag(const char *k)
{
	return strcasecmp(k, "$seen") == 0       ? STORE_FLAG_SEEN
	       : strcasecmp(k, "$flagged") == 0  ? STORE_FLAG_FLAGGED
	       : strcasecmp(k, "$answered") == 0 ? STORE_FLAG_ANSWERED
	       : strcasecmp(k, "$draft") == 0    ? STORE_FLAG_DRAFT
						 : 0;
}

/* A keywords object into flags and custom keywords (pointers into kw's
 * keys, *n of them; caller frees the array). */
static bool keywords_read(json_t *kw, unsigned *flags, const char ***list,
			  size_t *n)
{
	*flags = 0;
	*list = NULL;
	*n = 0;
	if (kw == NULL || json_is_null(kw))
		return true;
	if (!json_is_object(kw))
		return false;
	const char *k;
	json_t *v;
	json_object_foreach(kw, k, v) {
		if (!json_is_true(v) || !keyword_ok(k))
			return false;
		unsigned f = keyword_flag(k);
		if (f != 0) {
			*flags |= f;
			continue;
		}
		*list = xrealloc(*list, (*n + 1) * sizeof(char *));
		(*list)[(*n)++] = k;
	}
	return true;
}

/* A mailboxIds object to store ids; false if one is unknown. */
static bool mailboxes_read(struct jmap_req *req, const struct jmap_mailboxes *m,
			   json_t *ids, uint32_t **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!json_is_object(ids))
		return false;
	const char *k;
	json_t *v;
	json_object_foreach(ids, k, v) {
		const struct store_jmap_mailbox *mb =
			jmap_mailbox_by_oid(m, jmap_resolve_id(req, k));
		if (!json_is_true(v) || mb == NULL || mb->info.noselect) {
			free(*out);
			*out = NULL;
			return false;
		}
		*out = xrealloc(*out, (*n + 1) * sizeof(uint32_t));
		(*out)[(*n)++] = mb->info.id;
	}
	return true;
}

/* ---- creating from bytes (set, import) ---------------------------------- */

struct pending {
	const char *cid;          /* creation id */
	size_t op;                /* its index in the transaction */
};

/* Adds a create to tx: the message bytes, mailboxes, keywords, date. */
static json_t *tx_create(struct jmap_req *req, struct store_email_tx *tx,
			 const struct jmap_mailboxes *mbs, json_t *obj,
			 const char *data, size_t len)
{
	uint32_t *mb;
	size_t nmb;
	unsigned flags;
	const char **kw;
	size_t nkw;
	json_t *ra = json_object_get(obj, "receivedAt");
	time_t received = 0;
	if (!mailboxes_read(req, mbs, json_object_get(obj, "mailboxIds"), &mb,
			    &nmb) || nmb == 0)
		return jmap_set_error_props("invalidProperties",
					    "mailboxIds must name at least one"
					    " mailbox of this account",
					    "mailboxIds");
	if (!keywords_read(json_object_get(obj, "keywords"), &flags, &kw, &nkw)) {
		free(mb);
		return jmap_set_error_props("invalidProperties", NULL,
					    "keywords");
	}
	if (ra != NULL && !json_is_null(ra) &&
	    !jmap_utcdate_parse(json_string_value(ra), &received)) {
		free(mb);
		free(kw);
		return jmap_set_error_props("invalidProperties", NULL,
					    "receivedAt");
	}
	if (len > req->j->set.max_message_size) {
		free(mb);
		free(kw);
		return jmap_set_error("tooLarge", NULL);
	}
	struct store_body *body;
	struct store_error err;
	if (store_body_create(req->j->store, &body, &err) < 0 ||
	    store_body_write(body, data, len, &err) < 0 ||
	    store_body_finish(body, &err) < 0) {
		store_body_unref(&body);
		free(mb);
		free(kw);
		return jmap_set_error_store(&err);
	}
	struct store_append_params p = {flags, kw, nkw, received};
	store_email_tx_create(tx, &body, mb, nmb, &p);
	free(mb);
	free(kw);
	return NULL;
}

static json_t *created_json(struct jmap_req *req,
			    const struct store_email_result *r)
{
	char id[32], blob[32], tid[32];
	jmap_email_id(req, r->id, id);
	jmap_blob_id_email(req, r->id, blob);
	jmap_thread_id(req, r->thread, tid);
	return json_pack("{s:s,s:s,s:s,s:I}", "id", id, "blobId", blob,
			 "threadId", tid, "size", (json_int_t)r->size);
}

/* ---- updates ----------------------------------------------------------- */

struct upd {
	struct store_email_update u;
	const char **kw_add, **kw_rm;
	uint32_t *mb_add, *mb_rm;
	size_t nka, nkr, nma, nmr;
	char **owned;
	size_t nowned;
};

static void upd_free(struct upd *x)
{
	for (size_t i = 0; i < x->nowned; i++)
		free(x->owned[i]);
	free(x->owned);
	free(x->kw_add);
	free(x->kw_rm);
	free(x->mb_add);
	free(x->mb_rm);
}

/* A patch of an Email: only keywords and mailboxIds change. */
static json_t *patch_read(struct jmap_req *req, const struct jmap_mailboxes *m,
			  json_t *patch, struct upd *x)
{
	memset(x, 0, sizeof(*x));
	bool kw_whole = false, mb_whole = false, kw_part = false, mb_part = false;
	const char *k;
	json_t *v;
	json_object_foreach(patch, k, v) {
		if (strcmp(k, "keywords") == 0) {
			unsigned flags;
			const char **kw;
			size_t n;
			if (!keywords_read(v, &flags, &kw, &n))
				return jmap_set_error_props("invalidProperties",
							    NULL, "keywords");
			x->u.replace_keywords = true;
			x->u.flags = flags;
			free(x->kw_add);
			x->kw_add = kw;
			x->nka = n;
			kw_whole = true;
		} else if (strncmp(k, "keywords/", 9) == 0) {
			struct buf t;
			buf_init(&t, 0);
			bool ok = strchr(k + 9, '/') == NULL &&
				  jmap_pointer_token(k + 9, strlen(k + 9), &t);
			buf_append(&t, "", 0);
			char *name = buf_steal(&t, NULL);
			if (!ok || !keyword_ok(name) ||
			    !(json_is_true(v) || json_is_null(v))) {
				free(name);
				return jmap_set_error_props("invalidPatch", NULL, k);
			}
			unsigned f = keyword_flag(name);
			if (f != 0) {
				if (json_is_true(v))
					x->u.flags |= f;
				else
					x->u.flags_remove |= f;
				free(name);
			} else {
				const char ***arr = json_is_true(v) ? &x->kw_add
								    : &x->kw_rm;
				size_t *cnt = json_is_true(v) ? &x->nka : &x->nkr;
				*arr = xrealloc(*arr, (*cnt + 1) * sizeof(char *));
				(*arr)[(*cnt)++] = name;
				x->owned = xrealloc(x->owned, (x->nowned + 1) *
								      sizeof(char *));
				x->owned[x->nowned++] = name;
			}
			kw_part = true;
		} else if (strcmp(k, "mailboxIds") == 0) {
			uint32_t *mb;
			size_t n;
			if (!mailboxes_read(req, m, v, &mb, &n) || n == 0)
				return jmap_set_error_props("invalidProperties",
							    NULL, "mailboxIds");
			x->u.replace_mailboxes = true;
			free(x->mb_add);
			x->mb_add = mb;
			x->nma = n;
			mb_whole = true;
		} else if (strncmp(k, "mailboxIds/", 11) == 0) {
			const char *id = jmap_resolve_id(req, k + 11);
			const struct store_jmap_mailbox *mb =
				jmap_mailbox_by_oid(m, id);
			if (strchr(k + 11, '/') || !(json_is_true(v) || json_is_null(v)))
				return jmap_set_error_props("invalidPatch", NULL, k);
			if (mb == NULL)
				return jmap_set_error_props("invalidProperties",
							    "no such mailbox",
							    "mailboxIds");
			uint32_t **arr = json_is_true(v) ? &x->mb_add : &x->mb_rm;
			size_t *cnt = json_is_true(v) ? &x->nma : &x->nmr;
			*arr = xrealloc(*arr, (*cnt + 1) * sizeof(uint32_t));
			(*arr)[(*cnt)++] = mb->info.id;
			mb_part = true;
		} else {
			return jmap_set_error_props("invalidProperties",
						    "only keywords and"
						    " mailboxIds change",
						    k);
		}
	}
	if ((kw_whole && kw_part) || (mb_whole && mb_part))
		return jmap_set_error("invalidPatch",
				      "a whole property and a path into it");
	x->u.keywords = x->kw_add;
	x->u.keyword_count = x->nka;
	x->u.keywords_remove = x->kw_rm;
	x->u.keyword_remove_count = x->nkr;
	x->u.mailboxes = x->mb_add;
	x->u.mailbox_count = x->nma;
	x->u.mailboxes_remove = x->mb_rm;
	x->u.mailbox_remove_count = x->nmr;
	return NULL;
}

/* ---- Email/set ------------------------------------------------------------ */

struct op_ref {
	int kind;                 /* 0 create, 1 update, 2 destroy */
	const char *key;          /* creation id or Email id as given */
};

json_t *jmap_email_set(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, true);
	if (e != NULL)
		return e;
	json_t *create = json_object_get(args, "create");
	json_t *update = json_object_get(args, "update");
	json_t *destroy = json_object_get(args, "destroy");
	if ((create && !json_is_null(create) && !json_is_object(create)) ||
	    (update && !json_is_null(update) && !json_is_object(update)) ||
	    (destroy && !json_is_null(destroy) && !json_is_array(destroy)))
		return jmap_error("invalidArguments", "create/update/destroy");
	if (json_object_size(create) + json_object_size(update) +
		    json_array_size(destroy) >
	    req->j->set.max_objects_in_set)
		return jmap_error("requestTooLarge", "more than %u objects",
				  req->j->set.max_objects_in_set);
	json_t *old = jmap_state_json(req, STORE_JMAP_EMAIL);
	json_t *ifin = json_object_get(args, "ifInState");
	if (old == NULL)
		return jmap_error("serverFail", NULL);
	if (ifin != NULL && !json_is_null(ifin) && !json_equal(ifin, old)) {
		json_decref(old);
		return jmap_error("stateMismatch", NULL);
	}
	struct jmap_mailboxes mbs;
	struct store_error err;
	if (jmap_mailboxes_load(req, &mbs, &err) < 0) {
		json_decref(old);
		return jmap_store_error(req, &err);
	}
	json_t *created = json_object(), *updated = json_object(),
	       *destroyed = json_array(), *not_created = json_object(),
	       *not_updated = json_object(), *not_destroyed = json_object();
	struct store_email_tx *tx;
	store_email_tx_begin(req->user, &tx);
	size_t nops = json_object_size(create) + json_object_size(update) +
		      json_array_size(destroy);
	struct op_ref *refs = xcalloc(nops ? nops : 1, sizeof(*refs));
	size_t nref = 0;
	const char *k;
	json_t *v;
	json_object_foreach(create, k, v) {
		size_t len;
		json_t *se = NULL;
		char *msg = json_is_object(v) ? build_message(req, v, &len, &se)
					      : NULL;
		if (msg == NULL && se == NULL)
			se = jmap_set_error("invalidProperties", NULL);
		if (se == NULL)
			se = tx_create(req, tx, &mbs, v, msg, len);
		free(msg);
		if (se != NULL) {
			json_object_set_new(not_created, k, se);
			continue;
		}
		refs[nref++] = (struct op_ref){0, k};
	}
	json_object_foreach(update, k, v) {
		int64_t n = 0;
		const char *id = jmap_resolve_id(req, k);
		struct upd x;
		json_t *se = NULL;
		if (id == NULL || !jmap_email_id_parse(req, id, &n))
			se = jmap_set_error("notFound", NULL);
		else if (!json_is_object(v))
			se = jmap_set_error("invalidPatch", NULL);
		else if ((se = patch_read(req, &mbs, v, &x)) != NULL)
			upd_free(&x);
		if (se != NULL) {
			json_object_set_new(not_updated, k, se);
			continue;
		}
		store_email_tx_update(tx, n, &x.u);
		upd_free(&x);
		refs[nref++] = (struct op_ref){1, k};
	}
	size_t i;
	json_array_foreach(destroy, i, v) {
		int64_t n = 0;
		const char *raw = json_string_value(v);
		const char *id = jmap_resolve_id(req, raw);
		if (raw == NULL)
			continue;
		if (id == NULL || !jmap_email_id_parse(req, id, &n)) {
			json_object_set_new(not_destroyed, raw,
					    jmap_set_error("notFound", NULL));
			continue;
		}
		store_email_tx_destroy(tx, n);
		refs[nref++] = (struct op_ref){2, raw};
	}
	struct store_email_result *res = NULL;
	size_t nres = 0;
	int r = store_email_tx_commit(&tx, &res, &nres, &err);
	for (size_t o = 0; o < nres && o < nref; o++) {
		const struct op_ref *ref = &refs[o];
		const struct store_email_result *x = &res[o];
		bool ok = x->err.kind == STORE_ERR_NONE && r == 0;
		if (ref->kind == 0 && ok) {
			json_t *cj = created_json(req, x);
			json_object_set_new(created, ref->key, cj);
			jmap_add_created(req, ref->key,
					 json_string_value(json_object_get(cj, "id")));
		} else if (ref->kind == 0) {
			json_object_set_new(not_created, ref->key,
					    jmap_set_error_store(&x->err));
		} else if (ref->kind == 1 && ok) {
			json_object_set_new(updated, ref->key, json_null());
		} else if (ref->kind == 1) {
			json_object_set_new(not_updated, ref->key,
					    x->err.kind == STORE_ERR_INVALID
						    ? jmap_set_error_props(
							      "invalidProperties",
							      x->err.msg,
							      "mailboxIds")
						    : jmap_set_error_store(&x->err));
		} else if (ok) {
			json_array_append_new(destroyed, json_string(ref->key));
		} else {
			json_object_set_new(not_destroyed, ref->key,
					    jmap_set_error_store(&x->err));
		}
	}
	free(res);
	free(refs);
	jmap_mailboxes_free(&mbs);
	json_t *out = json_pack("{s:O,s:o,s:o}", "accountId",
				json_object_get(args, "accountId"), "oldState",
				old, "newState",
				jmap_state_json(req, STORE_JMAP_EMAIL));
	json_object_set_new(out, "created", created);
	json_object_set_new(out, "updated", updated);
	json_object_set_new(out, "destroyed", destroyed);
	json_object_set_new(out, "notCreated", not_created);
	json_object_set_new(out, "notUpdated", not_updated);
	json_object_set_new(out, "notDestroyed", not_destroyed);
	jmap_reply(req, "Email/set", out);
	return NULL;
}

/* ---- Email/import ------------------------------------------------------- */

json_t *jmap_email_import(struct jmap_req *req, json_t *args)
{
	json_t *e = jmap_account(req, args, true);
	if (e != NULL)
		return e;
	json_t *emails = json_object_get(args, "emails");
	if (!json_is_object(emails))
		return jmap_error("invalidArguments", "emails");
	if (json_object_size(emails) > req->j->set.max_objects_in_set)
		return jmap_error("requestTooLarge", NULL);
	json_t *old = jmap_state_json(req, STORE_JMAP_EMAIL);
	json_t *ifin = json_object_get(args, "ifInState");
	if (old == NULL)
		return jmap_error("serverFail", NULL);
	if (ifin != NULL && !json_is_null(ifin) && !json_equal(ifin, old)) {
		json_decref(old);
		return jmap_error("stateMismatch", NULL);
	}
	struct jmap_mailboxes mbs;
	struct store_error err;
	if (jmap_mailboxes_load(req, &mbs, &err) < 0) {
		json_decref(old);
		return jmap_store_error(req, &err);
	}
	json_t *created = json_object(), *not_created = json_object();
	struct store_email_tx *tx;
	store_email_tx_begin(req->user, &tx);
	const char **cids = xcalloc(json_object_size(emails) + 1, sizeof(char *));
	size_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(emails, k, v) {
		const char *bid = json_string_value(json_object_get(v, "blobId"));
		json_t *se = NULL;
		struct jmap_blob b;
		const char *rid = jmap_resolve_id(req, bid);
		if (!json_is_object(v)) {
			se = jmap_set_error("invalidProperties", NULL);
		} else {
			const char *key;
			json_t *x;
			json_object_foreach(v, key, x) {
				if (strcmp(key, "blobId") && strcmp(key, "mailboxIds") &&
				    strcmp(key, "keywords") && strcmp(key, "receivedAt"))
					se = jmap_set_error_props("invalidProperties",
								  NULL, key);
			}
		}
		if (se == NULL && (rid == NULL ||
				   jmap_blob_open(req->j, req->user, rid, &b,
						  &err) < 0))
			se = jmap_set_error("blobNotFound", NULL);
		else if (se == NULL) {
			if (b.len == 0 || mail_header_size(b.data, b.len) == 0 ||
			    memchr(b.data, ':', mail_header_size(b.data, b.len)) == NULL)
				se = jmap_set_error("invalidEmail",
						    "the blob is not a message");
			else
				se = tx_create(req, tx, &mbs, v, b.data, b.len);
			jmap_blob_close(&b);
		}
		if (se != NULL) {
			json_object_set_new(not_created, k, se);
			continue;
		}
		cids[n++] = k;
	}
	struct store_email_result *res = NULL;
	size_t nres = 0;
	int r = store_email_tx_commit(&tx, &res, &nres, &err);
	for (size_t i = 0; i < nres && i < n; i++) {
		if (res[i].err.kind == STORE_ERR_NONE && r == 0) {
			json_t *cj = created_json(req, &res[i]);
			json_object_set_new(created, cids[i], cj);
			jmap_add_created(req, cids[i],
					 json_string_value(json_object_get(cj, "id")));
		} else {
			json_object_set_new(not_created, cids[i],
					    jmap_set_error_store(&res[i].err));
		}
	}
	free(res);
	free(cids);
	jmap_mailboxes_free(&mbs);
	json_t *out = json_pack("{s:O,s:o,s:o,s:o,s:o}", "accountId",
				json_object_get(args, "accountId"), "oldState",
				old, "newState",
				jmap_state_json(req, STORE_JMAP_EMAIL), "created",
				created, "notCreated", not_created);
	jmap_reply(req, "Email/import", out);
	return NULL;
}

/* ---- Email/copy ---------------------------------------------------------- */

/* RFC 8621 4.7: between two accounts the caller reaches (its own and
 * those whose mail is shared with it): each Email's bytes read through
 * the source account's handle (r), created through the destination's
 * (i, in the store's checks). receivedAt and keywords default to the
 * original's, as the caller sees it. */
static json_t *keywords_of(const struct store_email *e)
{
	json_t *o = json_object();
	static const struct {
		unsigned bit;
		const char *kw;
	} sys[] = {{STORE_FLAG_SEEN, "$seen"}, {STORE_FLAG_FLAGGED, "$flagged"},
		   {STORE_FLAG_ANSWERED, "$answered"},
		   {STORE_FLAG_DRAFT, "$draft"}};
	for (size_t i = 0; i < sizeof(sys) / sizeof(*sys); i++)
		if (e->flags & sys[i].bit)
			json_object_set_new(o, sys[i].kw, json_true());
	for (size_t i = 0; i < e->keyword_count; i++)
		json_object_set_new(o, e->keywords[i], json_true());
	return o;
}

static void src_state(struct store_user *u, char out[48])
{
	struct store_jmap_cursor c[STORE_JMAP_KINDS];
	struct store_error err;
	if (store_jmap_states(u, c, &err) < 0)
		memset(c, 0, sizeof(c));
	jmap_state_format(&c[STORE_JMAP_EMAIL], out);
}

json_t *jmap_email_copy(struct jmap_req *req, json_t *args)
{
	json_t *from = json_object_get(args, "fromAccountId");
	int64_t src_id;
	if (!json_is_string(from))
		return jmap_error("invalidArguments", "fromAccountId");
	json_t *e = jmap_account(req, args, true);
	if (e != NULL)
		return e;
	if (!jmap_account_parse(json_string_value(from), &src_id))
		return jmap_error("fromAccountNotFound", NULL);
	if (src_id == req->account)
		return jmap_error("invalidArguments",
				  "fromAccountId and accountId must differ (RFC"
				  " 8620 5.4); within one account, use Email/set");
	json_t *create = json_object_get(args, "create");
	bool destroy_orig = false;
	if (!json_is_object(create) ||
	    !jmap_arg_bool(args, "onSuccessDestroyOriginal", false,
			   &destroy_orig, &e))
		return e != NULL ? e : jmap_error("invalidArguments", "create");
	if (json_object_size(create) > req->j->set.max_objects_in_set)
		return jmap_error("requestTooLarge", NULL);
	struct store_user *src;
	bool src_ro;
	if (jmap_account_open(req->j, req->who, src_id, &src, &src_ro, NULL,
			      0) < 0)
		return jmap_error("fromAccountNotFound", NULL);
	json_t *old = jmap_state_json(req, STORE_JMAP_EMAIL);
	json_t *ifin = json_object_get(args, "ifInState");
	if (old == NULL) {
		store_user_unref(&src);
		return jmap_error("serverFail", NULL);
	}
	if (ifin != NULL && !json_is_null(ifin) && !json_equal(ifin, old)) {
		store_user_unref(&src);
		json_decref(old);
		return jmap_error("stateMismatch", NULL);
	}
	struct jmap_mailboxes mbs;
	struct store_error err;
	if (jmap_mailboxes_load(req, &mbs, &err) < 0) {
		store_user_unref(&src);
		json_decref(old);
		return jmap_store_error(req, &err);
	}
	json_t *created = json_object(), *not_created = json_object();
	struct store_email_tx *tx;
	store_email_tx_begin(req->user, &tx);
	const char **cids = xcalloc(json_object_size(create) + 1,
				    sizeof(char *));
	int64_t *origs = xcalloc(json_object_size(create) + 1,
				 sizeof(int64_t));
	const char **srcs = xcalloc(json_object_size(create) + 1,
				    sizeof(char *));
	const char **dsrc = xcalloc(json_object_size(create) + 1,
				    sizeof(char *));
	size_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(create, k, v) {
		const char *sid = json_string_value(json_object_get(v, "id"));
		int64_t orig = 0;
		json_t *se = NULL;
		struct store_email *se_get = NULL;
		struct store_blob blob = {0};
		if (!json_is_object(v) || sid == NULL) {
			se = jmap_set_error_props("invalidProperties", NULL,
						  "id");
		} else if (!store_objectid_parse(sid, 'M', src_id, &orig) ||
			   store_email_get(src, &orig, 1, &se_get, &err) < 0 ||
			   se_get[0].id == 0 ||
			   store_email_open(src, orig, &blob, &err) < 0) {
			se = jmap_set_error("notFound", NULL);
		} else {
			json_t *obj = json_deep_copy(v);
			json_object_del(obj, "id");
			if (json_object_get(obj, "keywords") == NULL)
				json_object_set_new(obj, "keywords",
						    keywords_of(&se_get[0]));
			if (json_object_get(obj, "receivedAt") == NULL) {
				char d[32];
				jmap_utcdate(se_get[0].received, d);
				json_object_set_new(obj, "receivedAt",
						    json_string(d));
			}
			se = tx_create(req, tx, &mbs, obj, blob.data, blob.len);
			json_decref(obj);
		}
		if (blob.priv != NULL)
			store_blob_close(&blob);
		store_email_free(se_get, se_get != NULL ? 1 : 0);
		if (se != NULL) {
			json_object_set_new(not_created, k, se);
			continue;
		}
		origs[n] = orig;
		srcs[n] = sid;
		cids[n++] = k;
	}
	struct store_email_result *res = NULL;
	size_t nres = 0;
	int r = store_email_tx_commit(&tx, &res, &nres, &err);
	struct store_email_tx *dtx = NULL;
	if (destroy_orig)
		store_email_tx_begin(src, &dtx);
	size_t ndestroy = 0;
	for (size_t i = 0; i < nres && i < n; i++) {
		if (res[i].err.kind == STORE_ERR_NONE && r == 0) {
			json_t *cj = created_json(req, &res[i]);
			json_object_set_new(created, cids[i], cj);
			jmap_add_created(req, cids[i],
					 json_string_value(json_object_get(cj, "id")));
			if (dtx != NULL) {
				store_email_tx_destroy(dtx, origs[i]);
				dsrc[ndestroy++] = srcs[i];
			}
		} else {
			json_object_set_new(not_created, cids[i],
					    jmap_set_error_store(&res[i].err));
		}
	}
	free(res);
	free(cids);
	free(origs);
	free(srcs);
	jmap_mailboxes_free(&mbs);
	json_t *out = json_pack("{s:O,s:O,s:o,s:o,s:o,s:o}", "fromAccountId",
				from, "accountId",
				json_object_get(args, "accountId"), "oldState",
				old, "newState",
				jmap_state_json(req, STORE_JMAP_EMAIL), "created",
				json_object_size(created)
					? created
					: (json_decref(created), json_null()),
				"notCreated",
				json_object_size(not_created)
					? not_created
					: (json_decref(not_created), json_null()));
	jmap_reply(req, "Email/copy", out);
	/* RFC 8621 4.7: then an implicit Email/set destroying the originals
	 * in the source account */
	if (dtx != NULL) {
		char s0[48], s1[48];
		src_state(src, s0);
		struct store_email_result *dres = NULL;
		size_t nd = 0;
		int dr = 0;
		if (ndestroy > 0)
			dr = store_email_tx_commit(&dtx, &dres, &nd, &err);
		else
			store_email_tx_abort(&dtx);
		src_state(src, s1);
		json_t *destroyed = json_array(), *not_destroyed = json_object();
		for (size_t i = 0; i < nd && i < ndestroy; i++) {
			if (dres[i].err.kind == STORE_ERR_NONE && dr == 0)
				json_array_append_new(destroyed,
						      json_string(dsrc[i]));
			else
				json_object_set_new(not_destroyed, dsrc[i],
						    jmap_set_error_store(
							    &dres[i].err));
		}
		free(dres);
		jmap_reply(req, "Email/set",
			   json_pack("{s:O,s:s,s:s,s:o,s:o}", "accountId", from,
				     "oldState", s0, "newState", s1,
				     "destroyed", destroyed, "notDestroyed",
				     json_object_size(not_destroyed)
					     ? not_destroyed
					     : (json_decref(not_destroyed),
						json_null())));
	}
	free(dsrc);
	store_user_unref(&src);
	return NULL;
}
