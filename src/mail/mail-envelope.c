/*
 * ENVELOPE (RFC 3501 7.4.2 / RFC 9051 7.5.2) from a header block:
 * (date subject from sender reply-to to cc bcc in-reply-to message-id).
 * Sender and Reply-To default to From. Values are the raw header text
 * (encoded words are the client's to decode), unfolded; the subject and
 * display names are written in Dovecot's "for humans" form.
 */
#include "mail-private.h"

#include <string.h>

enum env_field {
	ENV_DATE, ENV_SUBJECT, ENV_FROM, ENV_SENDER, ENV_REPLY_TO, ENV_TO,
	ENV_CC, ENV_BCC, ENV_IN_REPLY_TO, ENV_MESSAGE_ID, ENV_COUNT
};

static const char *const env_names[ENV_COUNT] = {
	"Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc", "Bcc",
	"In-Reply-To", "Message-ID",
};

static void write_addresses(struct buf *out, const struct mail_address *v,
			    size_t n)
{
	if (n == 0) {
		mail_buf_puts(out, "NIL");
		return;
	}
	mail_buf_putc(out, '(');
	for (size_t i = 0; i < n; i++) {
		const struct mail_address *a = &v[i];
		mail_buf_putc(out, '(');
		if (a->name == NULL)
			mail_buf_puts(out, "NIL");
		else
			mail_imap_string_for_humans(out, a->name, strlen(a->name));
		mail_buf_putc(out, ' ');
		mail_imap_nstring(out, a->route, a->route ? strlen(a->route) : 0, false);
		mail_buf_putc(out, ' ');
		mail_imap_nstring(out, a->mailbox,
				  a->mailbox ? strlen(a->mailbox) : 0, false);
		mail_buf_putc(out, ' ');
		mail_imap_nstring(out, a->host, a->host ? strlen(a->host) : 0, false);
		mail_buf_putc(out, ')');
	}
	mail_buf_putc(out, ')');
}

void mail_write_envelope(struct buf *out, const char *hdr, size_t hdr_len)
{
	struct slice val[ENV_COUNT];
	bool have[ENV_COUNT] = {false};
	/* address fields that occur more than once are joined, as Dovecot
	 * does; other fields: the last one wins */
	struct buf joined[ENV_COUNT];
	for (int f = 0; f < ENV_COUNT; f++)
		buf_init(&joined[f], 0);
	struct mail_header_iter it;
	struct slice n, v;
	mail_header_iter_init(&it, hdr, hdr_len);
	while (mail_header_iter_next(&it, &n, &v) > 0) {
		for (int f = 0; f < ENV_COUNT; f++) {
			if (mail_slice_eq_ci(n, env_names[f])) {
				bool addr = f >= ENV_FROM && f <= ENV_BCC;
				if (addr && have[f]) {
					if (joined[f].len == 0)
						mail_buf_put(&joined[f], val[f].ptr, val[f].len);
					mail_buf_puts(&joined[f], ", ");
					mail_buf_put(&joined[f], v.ptr, v.len);
				}
				val[f] = v;
				have[f] = true;
				break;
			}
		}
	}
	for (int f = 0; f < ENV_COUNT; f++) {
		if (joined[f].len > 0)
			val[f] = slice_make(joined[f].data, joined[f].len);
	}
	struct buf tmp;
	buf_init(&tmp, 0);
	mail_buf_putc(out, '(');
	for (int f = 0; f < ENV_COUNT; f++) {
		if (f > 0)
			mail_buf_putc(out, ' ');
		int src = f;
		if ((f == ENV_SENDER || f == ENV_REPLY_TO)) {
			/* an absent or empty Sender/Reply-To is From */
			struct mail_address *l = NULL;
			size_t cnt = have[f] ? mail_address_parse(val[f].ptr, val[f].len, &l) : 0;
			mail_address_list_free(l, cnt);
			if (cnt == 0)
				src = ENV_FROM;
		}
		if (!have[src]) {
			mail_buf_puts(out, "NIL");
			continue;
		}
		buf_reset(&tmp);
		mail_header_unfold(&tmp, val[src]);
		const char *s = tmp.data ? tmp.data : "";
		switch (f) {
		case ENV_SUBJECT:
			/* folded: the line ends count as changes (a literal) */
			mail_imap_string_for_humans(out, val[f].ptr, val[f].len);
			break;
		case ENV_DATE:
		case ENV_IN_REPLY_TO:
		case ENV_MESSAGE_ID:
			mail_imap_nstring_nolf(out, s, tmp.len);
			break;
		default: {
			struct mail_address *l;
			size_t cnt = mail_address_parse(s, tmp.len, &l);
			write_addresses(out, l, cnt);
			mail_address_list_free(l, cnt);
		}
		}
	}
	mail_buf_putc(out, ')');
	buf_free(&tmp);
	for (int f = 0; f < ENV_COUNT; f++)
		buf_free(&joined[f]);
}
