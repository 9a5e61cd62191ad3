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

void store_analyze(const char *data, size_t len, struct mail_result *r)
{
	store_analyze_plain(data, len, r, 0, NULL, NULL);
}

void store_analyze_plain(const char *data, size_t len, struct mail_result *r,
			 size_t max, char **plain_r, size_t *plain_len_r)
{
	/* All of the text: no cap on what SEARCH sees (mail's default keeps
	 * 16 MiB). The text is at most what the message decodes to, and
	 * the message is bounded by max_message_size. */
	struct mail_limits limits;
	mail_limits_default(&limits);
	limits.max_search_text = (size_t)1 << 40;
	struct mail_analyze_options opt = {.limits = &limits, .want_text = true};
	mail_analyze(data, len, &opt, r);
	r->header_text = fold_take(r->header_text, r->header_text_len,
				   &r->header_text_len);
	if (plain_r != NULL) {
		*plain_r = NULL;
		*plain_len_r = 0;
		if (r->body_text_len <= max) {
			*plain_r = xmalloc(r->body_text_len + 1);
			if (r->body_text_len > 0)
				memcpy(*plain_r, r->body_text, r->body_text_len);
			(*plain_r)[r->body_text_len] = '\0';
			*plain_len_r = r->body_text_len;
		}
	}
	r->body_text = fold_take(r->body_text, r->body_text_len,
				 &r->body_text_len);
}
