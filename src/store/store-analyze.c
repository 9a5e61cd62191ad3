/*
 * What the store learns about a message when it is written: one call into
 * src/mail (ENVELOPE, BODYSTRUCTURE, part map, preview, sort and thread
 * fields, decoded search text), cached in the index so that FETCH and
 * SEARCH never re-read the blob. The search text is stored case-folded,
 * so that a substring test on it is IMAP SEARCH's case-insensitive match.
 */
#include "store-private.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mail.h"

void store_text_fold(struct buf *out, const char *s, size_t len)
{
	/* The same folding as mail_text_contains(): fold(text) contains
	 * fold(needle) exactly when IMAP SEARCH says the text matches. */
	mail_text_fold(out, s, len);
}

static char *fold_take(char *s, size_t len, size_t *len_r)
{
	struct buf b;
	buf_init(&b, 0);
	if (s != NULL)
		store_text_fold(&b, s, len);
	free(s);
	return buf_steal(&b, len_r);
}

void store_analyze(const char *data, size_t len, struct store_analysis *r)
{
	struct mail_result m;
	struct mail_analyze_options opt = {.want_text = true};
	memset(r, 0, sizeof(*r));
	mail_analyze(data, len, &opt, &m);
	/* the strings move over; mail_result_free frees what is left */
	r->envelope = m.envelope;
	r->bodystructure = m.bodystructure;
	r->body = m.body;
	r->parts = m.parts;
	r->parts_len = m.parts_len;
	r->preview = m.preview;
	r->sort_subject = m.sort_subject;
	r->sort_from = m.sort_from;
	r->sort_to = m.sort_to;
	r->sort_cc = m.sort_cc;
	r->sort_display_from = m.sort_display_from;
	r->sort_display_to = m.sort_display_to;
	r->sent_date = m.sent_date;
	r->message_id = m.message_id;
	r->in_reply_to = m.in_reply_to;
	r->references = m.references;
	r->header_text = fold_take(m.header_text, m.header_text_len,
				   &r->header_text_len);
	r->body_text = fold_take(m.body_text, m.body_text_len,
				 &r->body_text_len);
	memset(&m, 0, sizeof(m));
	mail_result_free(&m);
}

void store_analysis_free(struct store_analysis *r)
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
