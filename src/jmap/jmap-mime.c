/*
 * A message as JMAP shows it (RFC 8621 4.1): the header field forms
 * (Raw, Text, Addresses, GroupedAddresses, MessageIds, Date, URLs), the
 * tree of EmailBodyParts with the textBody / htmlBody / attachments lists
 * of 4.1.4, and bodyValues. Parts are found through src/mail's part map,
 * numbered as IMAP numbers them, so a part's blob id carries its IMAP
 * path and its bytes come from mail_binary_get.
 */
#include "jmap-mime.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "mail.h"

/* ---- header forms ---------------------------------------------------- */

static struct slice trim(struct slice s)
{
	while (s.len > 0 && (s.ptr[0] == ' ' || s.ptr[0] == '\t' ||
			     s.ptr[0] == '\r' || s.ptr[0] == '\n')) {
		s.ptr++;
		s.len--;
	}
	while (s.len > 0 && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t' ||
			     s.ptr[s.len - 1] == '\r' || s.ptr[s.len - 1] == '\n'))
		s.len--;
	return s;
}

/* A JSON string from bytes that should be UTF-8: invalid sequences are
 * taken as Windows-1252 (jansson refuses invalid UTF-8). */
json_t *jmime_string(const char *s, size_t len)
{
	if (mail_utf8_valid(s, len))
		return json_stringn(s, len);
	struct buf b;
	buf_init(&b, 0);
	mail_charset_to_utf8(&b, "windows-1252", s, len);
	json_t *r = json_stringn(b.data ? b.data : "", b.len);
	buf_free(&b);
	return r;
}

static json_t *form_text(struct slice v)
{
	struct buf b;
	buf_init(&b, 0);
	mail_header_decode(&b, v);
	struct slice t = trim(slice_make(b.data ? b.data : "", b.len));
	json_t *r = jmime_string(t.ptr, t.len);
	buf_free(&b);
	return r;
}

static json_t *address_json(const struct mail_address *a)
{
	json_t *name = a->name_utf8 != NULL && a->name_utf8[0] != '\0'
			       ? jmime_string(a->name_utf8, strlen(a->name_utf8))
			       : json_null();
	char *email = xasprintf("%s@%s", a->mailbox ? a->mailbox : "",
				a->host ? a->host : "");
	json_t *r = json_pack("{s:o,s:o}", "name", name, "email",
			      jmime_string(email, strlen(email)));
	free(email);
	return r;
}

static bool is_group_start(const struct mail_address *a)
{
	return a->host == NULL && a->mailbox != NULL;
}

static bool is_group_end(const struct mail_address *a)
{
	return a->host == NULL && a->mailbox == NULL;
}

static json_t *form_addresses(struct slice v, bool grouped)
{
	struct mail_address *list;
	size_t n = mail_address_parse(v.ptr, v.len, &list);
	json_t *out = json_array(), *group = NULL, *cur = NULL;
	for (size_t i = 0; i < n; i++) {
		const struct mail_address *a = &list[i];
		if (is_group_start(a)) {
			if (grouped) {
				struct buf nm;
				buf_init(&nm, 0);
				mail_header_decode(&nm, slice_make(a->mailbox,
								   strlen(a->mailbox)));
				group = json_pack("{s:o,s:[]}", "name",
						  jmime_string(nm.data ? nm.data : "",
							       nm.len),
						  "addresses");
				buf_free(&nm);
				json_array_append_new(out, group);
				cur = json_object_get(group, "addresses");
			}
			continue;
		}
		if (is_group_end(a)) {
			group = NULL;
			cur = NULL;
			continue;
		}
		if (!grouped) {
			json_array_append_new(out, address_json(a));
			continue;
		}
		if (cur == NULL) {
			json_t *g = json_pack("{s:n,s:[]}", "name", "addresses");
			json_array_append_new(out, g);
			cur = json_object_get(g, "addresses");
		}
		json_array_append_new(cur, address_json(a));
		/* ungrouped addresses in a row share one null group */
		if (group == NULL && i + 1 < n && is_group_start(&list[i + 1]))
			cur = NULL;
	}
	mail_address_list_free(list, n);
	return out;
}

static json_t *form_message_ids(struct slice v)
{
	json_t *out = json_array();
	const char *p = v.ptr, *end = v.ptr + v.len;
	while (p < end) {
		const char *lt = memchr(p, '<', (size_t)(end - p));
		if (lt == NULL)
			break;
		const char *gt = memchr(lt, '>', (size_t)(end - lt));
		if (gt == NULL)
			break;
		struct slice id = trim(slice_make(lt + 1, (size_t)(gt - lt - 1)));
		bool ok = id.len > 0 && memchr(id.ptr, '@', id.len) != NULL;
		for (size_t i = 0; ok && i < id.len; i++)
			ok = (unsigned char)id.ptr[i] > 0x20 && id.ptr[i] != '<';
		if (!ok) {
			json_decref(out);
			return json_null();
		}
		json_array_append_new(out, jmime_string(id.ptr, id.len));
		p = gt + 1;
	}
	/* anything but blanks and comments outside <...> is not msg-ids */
	if (json_array_size(out) == 0) {
		json_decref(out);
		return json_null();
	}
	return out;
}

static json_t *form_date(struct slice v)
{
	struct buf b;
	buf_init(&b, 0);
	mail_header_unfold(&b, v);
	time_t t;
	int off;
	json_t *r = json_null();
	if (b.len > 0 && mail_date_parse(b.data, b.len, &t, &off)) {
		char out[40];
		jmap_date_offset(t, off, out);
		r = json_string(out);
	}
	buf_free(&b);
	return r;
}

static json_t *form_urls(struct slice v)
{
	json_t *out = json_array();
	const char *p = v.ptr, *end = v.ptr + v.len;
	while (p < end) {
		const char *lt = memchr(p, '<', (size_t)(end - p));
		if (lt == NULL)
			break;
		const char *gt = memchr(lt, '>', (size_t)(end - lt));
		if (gt == NULL)
			break;
		struct buf u;
		buf_init(&u, 0);
		mail_header_unfold(&u, slice_make(lt + 1, (size_t)(gt - lt - 1)));
		struct slice t = trim(slice_make(u.data ? u.data : "", u.len));
		/* whitespace inside is folding: drop it */
		struct buf c;
		buf_init(&c, 0);
		for (size_t i = 0; i < t.len; i++)
			if (t.ptr[i] != ' ' && t.ptr[i] != '\t')
				buf_append_char(&c, t.ptr[i]);
		json_array_append_new(out, jmime_string(c.data ? c.data : "",
							c.len));
		buf_free(&c);
		buf_free(&u);
		p = gt + 1;
	}
	if (json_array_size(out) == 0) {
		json_decref(out);
		return json_null();
	}
	return out;
}

/* The raw value: from just after the colon to the line end. */
static struct slice raw_value(struct slice name, struct slice value)
{
	const char *colon = memchr(name.ptr, ':',
				   (size_t)(value.ptr + value.len - name.ptr));
	if (colon == NULL)
		return value;
	return slice_make(colon + 1, (size_t)(value.ptr + value.len - colon - 1));
}

json_t *jmime_form(struct slice name, struct slice value,
		   enum jmime_form form)
{
	switch (form) {
	case JMIME_RAW: {
		struct slice r = raw_value(name, value);
		return jmime_string(r.ptr, r.len);
	}
	case JMIME_TEXT:
		return form_text(value);
	case JMIME_ADDRESSES:
		return form_addresses(value, false);
	case JMIME_GROUPED:
		return form_addresses(value, true);
	case JMIME_MESSAGE_IDS:
		return form_message_ids(value);
	case JMIME_DATE:
		return form_date(value);
	case JMIME_URLS:
		return form_urls(value);
	}
	return json_null();
}

json_t *jmime_header(const char *hdr, size_t hlen, const char *name,
		     enum jmime_form form, bool all)
{
	struct mail_header_iter it;
	struct slice n, v;
	json_t *vals = all ? json_array() : NULL, *last = NULL;
	mail_header_iter_init(&it, hdr, hlen);
	while (mail_header_iter_next(&it, &n, &v) == 1) {
		struct slice nt = trim(n);
		if (nt.len != strlen(name) || strncasecmp(nt.ptr, name, nt.len))
			continue;
		json_t *x = jmime_form(n, v, form);
		if (all) {
			json_array_append_new(vals, x);
		} else {
			json_decref(last);
			last = x;
		}
	}
	if (all)
		return vals;
	return last != NULL ? last : json_null();
}

json_t *jmime_headers(const char *hdr, size_t hlen)
{
	struct mail_header_iter it;
	struct slice n, v;
	json_t *out = json_array();
	mail_header_iter_init(&it, hdr, hlen);
	while (mail_header_iter_next(&it, &n, &v) == 1) {
		struct slice nt = trim(n);
		struct slice raw = raw_value(n, v);
		json_array_append_new(out, json_pack("{s:o,s:o}", "name",
						     jmime_string(nt.ptr, nt.len),
						     "value",
						     jmime_string(raw.ptr, raw.len)));
	}
	return out;
}

bool jmime_form_parse(const char *s, enum jmime_form *form_r)
{
	static const struct {
		const char *name;
		enum jmime_form form;
	} forms[] = {
		{"asRaw", JMIME_RAW},
		{"asText", JMIME_TEXT},
		{"asAddresses", JMIME_ADDRESSES},
		{"asGroupedAddresses", JMIME_GROUPED},
		{"asMessageIds", JMIME_MESSAGE_IDS},
		{"asDate", JMIME_DATE},
		{"asURLs", JMIME_URLS},
	};
	for (size_t i = 0; i < sizeof(forms) / sizeof(*forms); i++)
		if (strcmp(forms[i].name, s) == 0) {
			*form_r = forms[i].form;
			return true;
		}
	return false;
}

/* RFC 8621 4.1.2.x: which forms a field may be read as. */
static bool form_allowed(const char *name, enum jmime_form f)
{
	static const char *const addr[] = {"from", "sender", "reply-to", "to",
					   "cc", "bcc", "resent-from",
					   "resent-sender", "resent-reply-to",
					   "resent-to", "resent-cc",
					   "resent-bcc", NULL};
	static const char *const ids[] = {"message-id", "in-reply-to",
					  "references", "resent-message-id",
					  NULL};
	static const char *const dates[] = {"date", "resent-date", NULL};
	static const char *const urls[] = {"list-help", "list-unsubscribe",
					   "list-subscribe", "list-post",
					   "list-owner", "list-archive", NULL};
	static const char *const text[] = {"subject", "comments", "keywords",
					   "list-id", NULL};
	const char *const *lists[] = {addr, ids, dates, urls, text};
	int in = -1;
	for (int l = 0; l < 5 && in < 0; l++)
		for (const char *const *p = lists[l]; *p; p++)
			if (strcasecmp(*p, name) == 0)
				in = l;
	switch (f) {
	case JMIME_RAW:
		return true;
	case JMIME_TEXT:
		return in < 0 || in == 4;
	case JMIME_ADDRESSES:
	case JMIME_GROUPED:
		return in < 0 || in == 0;
	case JMIME_MESSAGE_IDS:
		return in < 0 || in == 1;
	case JMIME_DATE:
		return in < 0 || in == 2;
	case JMIME_URLS:
		return in < 0 || in == 3;
	}
	return false;
}

bool jmime_header_prop(const char *prop, char *name, size_t name_size,
		       enum jmime_form *form_r, bool *all_r)
{
	if (strncmp(prop, "header:", 7) != 0)
		return false;
	const char *p = prop + 7;
	const char *c1 = strchr(p, ':');
	size_t nlen = c1 ? (size_t)(c1 - p) : strlen(p);
	if (nlen == 0 || nlen >= name_size)
		return false;
	for (size_t i = 0; i < nlen; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch <= 0x20 || ch >= 0x7f)
			return false;
	}
	memcpy(name, p, nlen);
	name[nlen] = '\0';
	*form_r = JMIME_RAW;
	*all_r = false;
	if (c1 == NULL)
		return true;
	const char *rest = c1 + 1;
	if (strcmp(rest, "all") == 0) {
		*all_r = true;
		return true;
	}
	const char *c2 = strchr(rest, ':');
	char form[32];
	size_t flen = c2 ? (size_t)(c2 - rest) : strlen(rest);
	if (flen == 0 || flen >= sizeof(form))
		return false;
	memcpy(form, rest, flen);
	form[flen] = '\0';
	if (!jmime_form_parse(form, form_r) || !form_allowed(name, *form_r))
		return false;
	if (c2 != NULL) {
		if (strcmp(c2 + 1, "all") != 0)
			return false;
		*all_r = true;
	}
	return true;
}

/* ---- the part tree ----------------------------------------------------- */

static void part_params(struct jpart *p, const char *hdr, size_t hlen)
{
	struct slice v;
	struct mail_params ct = {0}, cd = {0};
	if (mail_header_find(hdr, hlen, "Content-Type", &v))
		mail_params_parse(v.ptr, v.len, &ct);
	if (mail_header_find(hdr, hlen, "Content-Disposition", &v))
		mail_params_parse(v.ptr, v.len, &cd);
	if (cd.value != NULL && cd.value[0] != '\0')
		p->disposition = xstrdup(cd.value);
	const char *nm = mail_params_get(&cd, "filename");
	if (nm == NULL)
		nm = mail_params_get(&ct, "name");
	if (nm != NULL) {
		struct buf b;
		buf_init(&b, 0);
		/* RFC 2047 words in a filename are common: decode them */
		mail_decode_2047(&b, nm, strlen(nm));
		buf_append(&b, "", 0);
		p->name = buf_steal(&b, NULL);
	}
	const char *cs = mail_params_get(&ct, "charset");
	if (cs != NULL && cs[0] != '\0')
		p->charset = xstrdup(cs);
	if (mail_header_find(hdr, hlen, "Content-ID", &v)) {
		struct buf b;
		buf_init(&b, 0);
		mail_header_unfold(&b, v);
		struct slice t = trim(slice_make(b.data ? b.data : "", b.len));
		if (t.len >= 2 && t.ptr[0] == '<' && t.ptr[t.len - 1] == '>')
			t = slice_make(t.ptr + 1, t.len - 2);
		p->cid = xstrndup(t.ptr, t.len);
		buf_free(&b);
	}
	if (mail_header_find(hdr, hlen, "Content-Location", &v)) {
		struct buf b;
		buf_init(&b, 0);
		mail_header_unfold(&b, v);
		struct slice t = trim(slice_make(b.data ? b.data : "", b.len));
		p->location = xstrndup(t.ptr, t.len);
		buf_free(&b);
	}
	if (mail_header_find(hdr, hlen, "Content-Language", &v)) {
		struct buf b;
		buf_init(&b, 0);
		mail_header_unfold(&b, v);
		p->language = xstrndup(b.data ? b.data : "", b.len);
		buf_free(&b);
	}
	mail_params_free(&ct);
	mail_params_free(&cd);
}

static void part_add(struct jmime *m, const uint32_t *path, unsigned plen,
		     int parent, int depth)
{
	struct mail_part_info info;
	/* the root's own part is the message; a single-part message's body
	 * is IMAP part 1 */
	if (!mail_part_lookup(m->an.parts, m->an.parts_len, path, plen, &info))
		return;
	if (m->count == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 8;
		m->parts = xrealloc(m->parts, m->cap * sizeof(*m->parts));
	}
	int idx = (int)m->count++;
	struct jpart *p = &m->parts[idx];
	memset(p, 0, sizeof(*p));
	p->parent = parent;
	p->first_child = -1;
	p->next = -1;
	p->header = m->data + info.header_offset;
	p->header_len = (size_t)info.header_size;
	p->body_len = (size_t)info.body_size;
	snprintf(p->type, sizeof(p->type), "%.*s/%.*s", (int)info.type.len,
		 info.type.ptr, (int)info.subtype.len, info.subtype.ptr);
	p->multipart = info.type.len == 9 &&
		       strncmp(info.type.ptr, "multipart", 9) == 0 &&
		       info.child_count > 0;
	part_params(p, p->header, p->header_len);
	/* a single-part message is addressed as part 1 of itself */
	p->path_len = plen;
	if (plen > 0)
		memcpy(p->path, path, plen * sizeof(uint32_t));
	if (plen == 0 && !p->multipart) {
		p->path[0] = 1;
		p->path_len = 1;
	}
	bool unknown = false;
	uint64_t dsize = info.body_size;
	if (!p->multipart &&
	    mail_binary_size(m->data, m->len, m->an.parts, m->an.parts_len,
			     p->path, p->path_len, &dsize, &unknown) < 0)
		dsize = info.body_size;
	p->size = dsize;
	if (parent >= 0) {
		struct jpart *par = &m->parts[parent];
		if (par->first_child < 0) {
			par->first_child = idx;
		} else {
			int c = par->first_child;
			while (m->parts[c].next >= 0)
				c = m->parts[c].next;
			m->parts[c].next = idx;
		}
	}
	if (!p->multipart || depth >= 64 || plen >= MAIL_SECTION_MAX_PATH - 1)
		return;
	uint32_t kids = info.child_count;
	uint32_t sub[MAIL_SECTION_MAX_PATH];
	if (plen > 0)
		memcpy(sub, path, plen * sizeof(uint32_t));
	for (uint32_t i = 1; i <= kids && m->count < 10000; i++) {
		sub[plen] = i;
		part_add(m, sub, plen + 1, idx, depth + 1);
	}
}

int jmime_parse(struct jmime *m, const char *data, size_t len)
{
	memset(m, 0, sizeof(*m));
	m->data = data;
	m->len = len;
	struct mail_analyze_options o = {NULL, NULL, NULL, false};
	mail_analyze(data, len, &o, &m->an);
	part_add(m, NULL, 0, -1, 0);
	return m->count > 0 ? 0 : -1;
}

void jmime_free(struct jmime *m)
{
	for (size_t i = 0; i < m->count; i++) {
		struct jpart *p = &m->parts[i];
		free(p->disposition);
		free(p->name);
		free(p->charset);
		free(p->cid);
		free(p->location);
		free(p->language);
	}
	free(m->parts);
	mail_result_free(&m->an);
	memset(m, 0, sizeof(*m));
}

void jmime_part_id(const struct jpart *p, char out[256])
{
	size_t o = 0;
	out[0] = '\0';
	for (unsigned i = 0; i < p->path_len && o < 240; i++)
		o += (size_t)snprintf(out + o, 256 - o, "%s%u", i ? "." : "",
				      p->path[i]);
}

static void blob_id(const char *base, const uint32_t *prefix,
		    unsigned prefix_len, const struct jpart *p, char out[256])
{
	size_t o = (size_t)snprintf(out, 256, "%s-", base);
	for (unsigned i = 0; i < prefix_len + p->path_len && o < 240; i++) {
		uint32_t n = i < prefix_len ? prefix[i] : p->path[i - prefix_len];
		o += (size_t)snprintf(out + o, 256 - o, "%s%u", i ? "_" : "", n);
	}
}

json_t *jmime_part_json(const struct jmime *m, int idx, json_t *props,
			const char *blob_base, const uint32_t *prefix,
			unsigned prefix_len)
{
	const struct jpart *p = &m->parts[idx];
	json_t *o = json_object();
	char buf[256];
	if (jmap_want(props, "partId")) {
		jmime_part_id(p, buf);
		json_object_set_new(o, "partId",
				    p->multipart ? json_null() : json_string(buf));
	}
	if (jmap_want(props, "blobId")) {
		blob_id(blob_base, prefix, prefix_len, p, buf);
		json_object_set_new(o, "blobId",
				    p->multipart ? json_null() : json_string(buf));
	}
	if (jmap_want(props, "size"))
		json_object_set_new(o, "size",
				    json_integer(p->multipart ? 0
							      : (json_int_t)p->size));
	if (jmap_want(props, "headers"))
		json_object_set_new(o, "headers",
				    jmime_headers(p->header, p->header_len));
	if (jmap_want(props, "name"))
		json_object_set_new(o, "name",
				    p->name ? jmime_string(p->name, strlen(p->name))
					    : json_null());
	if (jmap_want(props, "type"))
		json_object_set_new(o, "type", json_string(p->type));
	if (jmap_want(props, "charset")) {
		bool text = strncmp(p->type, "text/", 5) == 0;
		json_object_set_new(o, "charset",
				    p->charset ? jmime_string(p->charset,
							      strlen(p->charset))
				    : text ? json_string("us-ascii")
					   : json_null());
	}
	if (jmap_want(props, "disposition"))
		json_object_set_new(o, "disposition",
				    p->disposition ? json_string(p->disposition)
						   : json_null());
	if (jmap_want(props, "cid"))
		json_object_set_new(o, "cid",
				    p->cid ? jmime_string(p->cid, strlen(p->cid))
					   : json_null());
	if (jmap_want(props, "language")) {
		json_t *l = json_null();
		if (p->language != NULL) {
			l = json_array();
			char *copy = xstrdup(p->language), *save = NULL;
			for (char *t = strtok_r(copy, ", \t", &save); t;
			     t = strtok_r(NULL, ", \t", &save))
				json_array_append_new(l, jmime_string(t, strlen(t)));
			free(copy);
		}
		json_object_set_new(o, "language", l);
	}
	if (jmap_want(props, "location"))
		json_object_set_new(o, "location",
				    p->location ? jmime_string(p->location,
							       strlen(p->location))
						: json_null());
	/* header:Name forms on parts too */
	size_t i;
	json_t *x;
	json_array_foreach(props, i, x) {
		char name[256];
		enum jmime_form f;
		bool all;
		if (jmime_header_prop(json_string_value(x), name, sizeof(name),
				      &f, &all))
			json_object_set_new(o, json_string_value(x),
					    jmime_header(p->header, p->header_len,
							 name, f, all));
	}
	if (p->multipart && jmap_want(props, "subParts")) {
		json_t *subs = json_array();
		for (int c = p->first_child; c >= 0; c = m->parts[c].next)
			json_array_append_new(subs, jmime_part_json(m, c, props,
								    blob_base,
								    prefix,
								    prefix_len));
		json_object_set_new(o, "subParts", subs);
	}
	return o;
}

/* ---- textBody, htmlBody, attachments (RFC 8621 4.1.4) ----------------- */

struct plist {
	int *v;
	size_t n;
	bool off;
};

static void plist_push(struct plist *l, int idx)
{
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(int));
	l->v[l->n++] = idx;
}

static bool inline_media(const char *type)
{
	return strncmp(type, "image/", 6) == 0 ||
	       strncmp(type, "audio/", 6) == 0 ||
	       strncmp(type, "video/", 6) == 0;
}

static void parse_structure(const struct jmime *m, int first,
			    const char *multi_type, bool in_alt,
			    struct plist *html, struct plist *text,
			    struct plist *att, int depth)
{
	/* the lists this level may still add to (inAlternative may drop
	 * one for the rest of this level) */
	bool text_on = !text->off, html_on = !html->off;
	size_t text_len = text_on ? text->n : (size_t)-1;
	size_t html_len = html_on ? html->n : (size_t)-1;
	int i = 0;
	for (int c = first; c >= 0; c = m->parts[c].next, i++) {
		const struct jpart *p = &m->parts[c];
		bool att_disp = p->disposition != NULL &&
				strcasecmp(p->disposition, "attachment") == 0;
		bool is_inline =
			!att_disp &&
			(strcmp(p->type, "text/plain") == 0 ||
			 strcmp(p->type, "text/html") == 0 ||
			 inline_media(p->type)) &&
			(i == 0 || (strcmp(multi_type, "related") != 0 &&
				    (inline_media(p->type) || p->name == NULL)));
		if (p->multipart) {
			const char *sub = strchr(p->type, '/') + 1;
			struct plist t2 = *text, h2 = *html;
			t2.off = !text_on;
			h2.off = !html_on;
			if (depth < 64)
				parse_structure(m, p->first_child, sub,
						in_alt || strcmp(sub, "alternative") == 0,
						&h2, &t2, att, depth + 1);
			text->v = t2.v;
			text->n = t2.n;
			html->v = h2.v;
			html->n = h2.n;
		} else if (is_inline) {
			if (strcmp(multi_type, "alternative") == 0) {
				if (strcmp(p->type, "text/plain") == 0)
					plist_push(text, c);
				else if (strcmp(p->type, "text/html") == 0)
					plist_push(html, c);
				else
					plist_push(att, c);
				continue;
			} else if (in_alt) {
				if (strcmp(p->type, "text/plain") == 0)
					html_on = false;
				if (strcmp(p->type, "text/html") == 0)
					text_on = false;
			}
			if (text_on)
				plist_push(text, c);
			if (html_on)
				plist_push(html, c);
			if ((!text_on || !html_on) && inline_media(p->type))
				plist_push(att, c);
		} else {
			plist_push(att, c);
		}
	}
	if (strcmp(multi_type, "alternative") == 0 && text_on && html_on) {
		if (text_len == text->n && html_len != html->n)
			for (size_t k = html_len; k < html->n; k++)
				plist_push(text, html->v[k]);
		if (html_len == html->n && text_len != text->n)
			for (size_t k = text_len; k < text->n; k++)
				plist_push(html, text->v[k]);
	}
}

void jmime_body_lists(const struct jmime *m, int **text_r, size_t *ntext,
		      int **html_r, size_t *nhtml, int **att_r, size_t *natt)
{
	struct plist text = {0}, html = {0}, att = {0};
	parse_structure(m, 0, "mixed", false, &html, &text, &att, 0);
	*text_r = text.v;
	*ntext = text.n;
	*html_r = html.v;
	*nhtml = html.n;
	*att_r = att.v;
	*natt = att.n;
}

/* ---- bodyValues ------------------------------------------------------- */

json_t *jmime_body_value(const struct jmime *m, int idx, uint64_t max_bytes)
{
	const struct jpart *p = &m->parts[idx];
	struct mail_section sec;
	bool unknown = false, problem = false;
	const char *raw;
	size_t rlen;
	if (mail_binary_get(m->data, m->len, m->an.parts, m->an.parts_len,
			    p->path, p->path_len, &sec, &unknown) == 0) {
		raw = sec.ptr;
		rlen = sec.len;
	} else {
		/* an encoding we do not know: the bytes as they are */
		problem = true;
		memset(&sec, 0, sizeof(sec));
		buf_init(&sec.owned, 0);
		raw = p->header + p->header_len;
		rlen = p->body_len;
	}
	struct buf out;
	buf_init(&out, 0);
	const char *cs = p->charset ? p->charset : "us-ascii";
	if (!mail_charset_to_utf8(&out, cs, raw ? raw : "", rlen))
		problem = true;
	mail_section_free(&sec);
	/* line ends as the text has them in JMAP: LF */
	size_t w = 0;
	for (size_t i = 0; i < out.len; i++) {
		if (out.data[i] == '\r' && i + 1 < out.len && out.data[i + 1] == '\n')
			continue;
		out.data[w++] = out.data[i];
	}
	out.len = w;
	bool truncated = false;
	if (max_bytes > 0 && out.len > max_bytes) {
		size_t cut = (size_t)max_bytes;
		while (cut > 0 && ((unsigned char)out.data[cut] & 0xc0) == 0x80)
			cut--;
		out.len = cut;
		truncated = true;
	}
	json_t *v = json_pack("{s:o,s:b,s:b}", "value",
			      jmime_string(out.data ? out.data : "", out.len),
			      "isEncodingProblem", problem, "isTruncated",
			      truncated);
	buf_free(&out);
	return v;
}
