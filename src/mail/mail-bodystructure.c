/*
 * BODYSTRUCTURE and BODY (RFC 3501 7.4.2 / RFC 9051 7.5.2) from the part
 * tree, in Dovecot's form where the RFC leaves a choice: types and
 * parameter names as written in the message, "charset" "us-ascii" added to
 * text parts that have none, "7bit" when there is no
 * Content-Transfer-Encoding, sizes counting a CR for every bare LF (the
 * size the client will get), a multipart without parts shown with one
 * empty text/plain part.
 */
#include "mail-private.h"

#include <string.h>

static void put_str(struct buf *out, const char *s)
{
	mail_imap_string(out, s, strlen(s), false);
}

static void put_nstring_slice(struct buf *out, struct slice v)
{
	if (v.ptr == NULL) {
		mail_buf_puts(out, "NIL");
		return;
	}
	struct buf tmp;
	buf_init(&tmp, 0);
	mail_header_unfold(&tmp, v);
	mail_imap_nstring_nolf(out, tmp.data ? tmp.data : "", tmp.len);
	buf_free(&tmp);
}

/* (name value ...) or NIL; default_charset adds "charset" "us-ascii" */
static void put_params(struct buf *out, const struct mail_param *list,
		       size_t count, bool default_charset)
{
	bool charset = false;
	for (size_t i = 0; i < count; i++)
		if (strcasecmp(list[i].name, "charset") == 0)
			charset = true;
	if (count == 0 && !(default_charset && !charset)) {
		mail_buf_puts(out, "NIL");
		return;
	}
	mail_buf_putc(out, '(');
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			mail_buf_putc(out, ' ');
		put_str(out, list[i].name);
		mail_buf_putc(out, ' ');
		put_str(out, list[i].value);
	}
	if (default_charset && !charset) {
		if (count > 0)
			mail_buf_putc(out, ' ');
		mail_buf_puts(out, "\"charset\" \"us-ascii\"");
	}
	mail_buf_putc(out, ')');
}

static void free_params(struct mail_param *list, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(list[i].name);
		free(list[i].value);
	}
	free(list);
}

static void put_disposition(struct buf *out, struct slice v)
{
	if (v.ptr == NULL) {
		mail_buf_puts(out, "NIL");
		return;
	}
	struct buf value;
	struct mail_param *list;
	size_t count;
	buf_init(&value, 0);
	mail_params_raw(v.ptr, v.len, &value, &list, &count);
	{
		/* even an empty value: Dovecot shows ("" NIL) */
		mail_buf_putc(out, '(');
		mail_imap_string(out, value.data ? value.data : "", value.len, false);
		mail_buf_putc(out, ' ');
		put_params(out, list, count, false);
		mail_buf_putc(out, ')');
	}
	free_params(list, count);
	buf_free(&value);
}

/* Content-Language: 1#Language-tag (RFC 3282) as a list of strings. */
static void put_language(struct buf *out, struct slice v)
{
	if (v.ptr == NULL) {
		mail_buf_puts(out, "NIL");
		return;
	}
	struct buf tags;
	buf_init(&tags, 0);
	size_t count = 0, i = 0;
	while (i < v.len) {
		while (i < v.len && (mail_is_lwsp(v.ptr[i]) || v.ptr[i] == ','))
			i++;
		size_t s = i;
		while (i < v.len && !mail_is_lwsp(v.ptr[i]) && v.ptr[i] != ',' &&
		       v.ptr[i] != '(' && v.ptr[i] != ';')
			i++;
		if (i > s) {
			if (count++ > 0)
				mail_buf_putc(&tags, ' ');
			mail_imap_string(&tags, v.ptr + s, i - s, false);
		}
		if (i < v.len && (v.ptr[i] == '(' || v.ptr[i] == ';'))
			break;
	}
	if (count == 0) {
		mail_buf_puts(out, "NIL");
	} else {
		mail_buf_putc(out, '(');
		mail_buf_put(out, tags.data, tags.len);
		mail_buf_putc(out, ')');
	}
	buf_free(&tags);
}

static void put_extension_tail(struct buf *out, const struct mpart *p)
{
	mail_buf_putc(out, ' ');
	put_disposition(out, p->cdisp);
	mail_buf_putc(out, ' ');
	put_language(out, p->clang);
	mail_buf_putc(out, ' ');
	put_nstring_slice(out, p->cloc);
}

static uint64_t body_vsize(const struct mpart *p)
{
	return (uint64_t)(p->body_end - p->body_off) + p->body_bare_lf;
}

static void write_part(struct buf *out, const struct mparse *mp, uint32_t idx,
		       bool extended);

static void write_multipart(struct buf *out, const struct mparse *mp,
			    const struct mpart *p, bool extended)
{
	if (p->first_child == MAIL_NONE) {
		/* RFC 2046 5.1.1 wants at least one part: show an empty one */
		mail_buf_puts(out, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") "
				   "NIL NIL \"7bit\" 0 0");
		mail_buf_puts(out, extended ? " NIL NIL NIL NIL)" : ")");
	}
	for (uint32_t c = p->first_child; c != MAIL_NONE; c = mp->parts[c].next) {
		mail_buf_putc(out, '(');
		write_part(out, mp, c, extended);
		mail_buf_putc(out, ')');
	}
	struct slice type, sub;
	bool valid;
	mail_buf_putc(out, ' ');
	if (mpart_ctype(p, &type, &sub, &valid))
		mail_imap_string(out, sub.ptr, sub.len, false);
	else
		mail_buf_puts(out, "\"x-unknown\"");
	if (!extended)
		return;
	struct buf value;
	struct mail_param *list;
	size_t count;
	buf_init(&value, 0);
	list = NULL;
	count = 0;
	if (valid)
		mail_params_raw(p->ctype.ptr, p->ctype.len, &value, &list, &count);
	mail_buf_putc(out, ' ');
	put_params(out, list, count, false);
	free_params(list, count);
	buf_free(&value);
	put_extension_tail(out, p);
}

static void write_leaf(struct buf *out, const struct mparse *mp,
		       const struct mpart *p, uint32_t idx, bool extended)
{
	struct slice type, sub;
	bool valid;
	bool have_type = mpart_ctype(p, &type, &sub, &valid);
	bool message = (p->flags & MP_MESSAGE) && p->first_child != MAIL_NONE;
	bool text;
	if (message && !have_type) {
		/* the default under multipart/digest */
		mail_buf_puts(out, "\"message\" \"rfc822\"");
		text = false;
	} else if (!have_type) {
		mail_buf_puts(out, "\"text\" \"plain\"");
		text = true;
	} else {
		/* as written, even when broken: Dovecot shows "text" "" for
		 * "Content-Type: text" and "" "" for worse */
		text = mail_slice_eq_ci(type, "text");
		mail_imap_string(out, type.ptr, type.len, false);
		mail_buf_putc(out, ' ');
		mail_imap_string(out, sub.ptr, sub.len, false);
	}
	struct buf value;
	struct mail_param *list = NULL;
	size_t count = 0;
	buf_init(&value, 0);
	if (have_type && valid)
		mail_params_raw(p->ctype.ptr, p->ctype.len, &value, &list, &count);
	mail_buf_putc(out, ' ');
	put_params(out, list, count, text);
	free_params(list, count);
	buf_free(&value);
	mail_buf_putc(out, ' ');
	put_nstring_slice(out, p->cid);
	mail_buf_putc(out, ' ');
	put_nstring_slice(out, p->cdesc);
	mail_buf_putc(out, ' ');
	struct slice cte;
	if ((p->flags & MP_IS_MIME) && mpart_cte(p, &cte))
		mail_imap_string(out, cte.ptr, cte.len, false);
	else
		mail_buf_puts(out, "\"7bit\"");
	if (buf_printf(out, " %llu", (unsigned long long)body_vsize(p)) < 0)
		abort();
	if (text) {
		if (buf_printf(out, " %llu", (unsigned long long)p->body_lines) < 0)
			abort();
	} else if (message) {
		const struct mpart *c = &mp->parts[p->first_child];
		mail_buf_putc(out, ' ');
		mail_write_envelope(out, mp->data + c->hdr_off, c->hdr_size);
		mail_buf_puts(out, " (");
		write_part(out, mp, p->first_child, extended);
		mail_buf_putc(out, ')');
		if (buf_printf(out, " %llu", (unsigned long long)p->body_lines) < 0)
			abort();
	}
	(void)idx;
	if (!extended)
		return;
	mail_buf_putc(out, ' ');
	put_nstring_slice(out, p->cmd5);
	put_extension_tail(out, p);
}

static void write_part(struct buf *out, const struct mparse *mp, uint32_t idx,
		       bool extended)
{
	const struct mpart *p = &mp->parts[idx];
	if (p->flags & MP_MULTIPART)
		write_multipart(out, mp, p, extended);
	else
		write_leaf(out, mp, p, idx, extended);
}

void mail_write_bodystructure(struct buf *out, const struct mparse *mp,
			      uint32_t idx, bool extended)
{
	mail_buf_putc(out, '(');
	write_part(out, mp, idx, extended);
	mail_buf_putc(out, ')');
}
