/*
 * mail_analyze(): everything the store caches about a message, from one
 * parse of its structure: ENVELOPE, BODYSTRUCTURE, BODY, the part map,
 * the preview, sort and thread fields, and the search text.
 */
#include "mail-private.h"

#include <string.h>

static char *header_first(const char *hdr, size_t len, const char *name,
			  bool decode)
{
	struct slice v;
	struct buf b;
	buf_init(&b, 0);
	if (mail_header_find(hdr, len, name, &v)) {
		if (decode)
			mail_header_decode(&b, v);
		else
			mail_header_unfold(&b, v);
	}
	return mail_buf_take(&b);
}

/* The first address of a field: its mailbox, and its display form
 * (RFC 5957 2: display name if any, else the addr-spec). */
static void first_address(const char *hdr, size_t len, const char *name,
			  char **mailbox_r, char **display_r)
{
	struct slice v;
	*mailbox_r = xstrdup("");
	if (display_r)
		*display_r = xstrdup("");
	if (!mail_header_find(hdr, len, name, &v))
		return;
	struct mail_address *list;
	size_t n = mail_address_parse(v.ptr, v.len, &list);
	for (size_t i = 0; i < n; i++) {
		if (list[i].host == NULL)
			continue;   /* group markers */
		free(*mailbox_r);
		*mailbox_r = xstrdup(list[i].mailbox ? list[i].mailbox : "");
		if (display_r) {
			free(*display_r);
			if (list[i].name_utf8 != NULL && list[i].name_utf8[0] != '\0')
				*display_r = xstrdup(list[i].name_utf8);
			else
				*display_r = xasprintf("%s@%s", list[i].mailbox,
						       list[i].host);
		}
		break;
	}
	mail_address_list_free(list, n);
}

/* msg-ids ("<...>") of a field; only the first when first is true. */
static char *msg_ids(const char *hdr, size_t len, const char *name, bool first)
{
	struct slice v;
	struct buf b;
	buf_init(&b, 0);
	if (mail_header_find(hdr, len, name, &v)) {
		const char *p = v.ptr, *end = v.ptr + v.len;
		while (p < end) {
			const char *lt = memchr(p, '<', (size_t)(end - p));
			if (lt == NULL)
				break;
			const char *gt = memchr(lt, '>', (size_t)(end - lt));
			if (gt == NULL)
				break;
			bool ok = gt > lt + 1;
			for (const char *c = lt + 1; c < gt; c++)
				if (mail_is_lwsp(*c) || *c == '<')
					ok = false;
			if (ok) {
				if (b.len > 0)
					mail_buf_putc(&b, ' ');
				mail_buf_put(&b, lt, (size_t)(gt - lt + 1));
				if (first)
					break;
			}
			p = gt + 1;
		}
	}
	return mail_buf_take(&b);
}

static void sort_fields(const char *hdr, size_t len, struct mail_result *r)
{
	char *subject = header_first(hdr, len, "Subject", true);
	struct buf b;
	buf_init(&b, 0);
	mail_base_subject(&b, subject, strlen(subject));
	r->sort_subject = mail_buf_take(&b);
	free(subject);
	first_address(hdr, len, "From", &r->sort_from, &r->sort_display_from);
	first_address(hdr, len, "To", &r->sort_to, &r->sort_display_to);
	first_address(hdr, len, "Cc", &r->sort_cc, NULL);
	struct slice v;
	r->sent_date = 0;
	if (mail_header_find(hdr, len, "Date", &v)) {
		time_t t;
		int tz;
		if (mail_date_parse(v.ptr, v.len, &t, &tz))
			r->sent_date = t;
	}
	r->message_id = msg_ids(hdr, len, "Message-ID", true);
	r->in_reply_to = msg_ids(hdr, len, "In-Reply-To", true);
	r->references = msg_ids(hdr, len, "References", false);
}

int mail_analyze(const char *data, size_t len,
		 const struct mail_analyze_options *options,
		 struct mail_result *r)
{
	struct mail_analyze_options defaults = {NULL, NULL, NULL, true};
	const struct mail_analyze_options *opt = options ? options : &defaults;
	struct mparse mp;
	struct buf b;
	memset(r, 0, sizeof(*r));
	if (data == NULL)
		data = "";
	mail_parse_structure(&mp, data, len, opt->limits);
	const struct mpart *root = &mp.parts[0];

	buf_init(&b, 0);
	mail_write_envelope(&b, data, root->hdr_size);
	r->envelope = mail_buf_take(&b);
	mail_write_bodystructure(&b, &mp, 0, true);
	r->bodystructure = mail_buf_take(&b);
	mail_write_bodystructure(&b, &mp, 0, false);
	r->body = mail_buf_take(&b);
	mail_parts_serialize(&b, &mp);
	r->parts_len = b.len;
	r->parts = mail_buf_take(&b);

	sort_fields(data, root->hdr_size, r);
	mail_collect_text(&mp, opt, r);

	r->size = len;
	r->part_count = mp.count;
	r->has_nul = memchr(data, '\0', len) != NULL;
	for (uint32_t i = 0; i < mp.count; i++) {
		const struct mpart *p = &mp.parts[i];
		if (p->cdisp.ptr != NULL) {
			struct mail_params d;
			mail_params_parse(p->cdisp.ptr, p->cdisp.len, &d);
			bool att = strcmp(d.value, "attachment") == 0 ||
				   (!(p->flags & (MP_TEXT | MP_MULTIPART)) &&
				    mail_params_get(&d, "filename") != NULL);
			mail_params_free(&d);
			if (att) {
				r->has_attachment = true;
				break;
			}
		}
	}
	mail_parse_free(&mp);
	return 0;
}

void mail_result_free(struct mail_result *r)
{
	free(r->envelope);
	free(r->bodystructure);
	free(r->body);
	free(r->parts);
	free(r->preview);
	free(r->sort_subject);
	free(r->sort_from);
	free(r->sort_to);
	free(r->sort_cc);
	free(r->sort_display_from);
	free(r->sort_display_to);
	free(r->message_id);
	free(r->in_reply_to);
	free(r->references);
	free(r->header_text);
	free(r->body_text);
	memset(r, 0, sizeof(*r));
}
