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

/* The addresses of every field of one kind, one after another: Dovecot
 * parses each occurrence on its own and joins the lists. */
struct addr_fields {
	struct slice *v;
	size_t n;
};

static void write_field_addresses(struct buf *out, const struct addr_fields *f)
{
	struct mail_address *all = NULL;
	size_t total = 0;
	for (size_t i = 0; i < f->n; i++) {
		struct mail_address *l;
		size_t cnt = mail_address_parse(f->v[i].ptr, f->v[i].len, &l);
		if (cnt > 0) {
			all = xrealloc(all, (total + cnt) * sizeof(*all));
			memcpy(all + total, l, cnt * sizeof(*l));
			total += cnt;
		}
		free(l);
	}
	write_addresses(out, all, total);
	mail_address_list_free(all, total);
}

static bool has_addresses(const struct addr_fields *f)
{
	for (size_t i = 0; i < f->n; i++) {
		struct mail_address *l;
		size_t cnt = mail_address_parse(f->v[i].ptr, f->v[i].len, &l);
		mail_address_list_free(l, cnt);
		if (cnt > 0)
			return true;
	}
	return false;
}

void mail_write_envelope(struct buf *out, const char *hdr, size_t hdr_len)
{
	struct slice val[ENV_COUNT];
	bool have[ENV_COUNT] = {false};
	struct addr_fields addrs[ENV_COUNT];
	memset(addrs, 0, sizeof(addrs));
	struct mail_header_iter it;
	struct slice n, v;
	/* A lone CR (not before LF) reads as a folded line break, as
	 * Dovecot's header parser has it; work on a copy only then. */
	char *copy = NULL;
	bool lone_cr = false;
	for (const char *c = hdr, *e = hdr + hdr_len;
	     (c = memchr(c, '\r', (size_t)(e - c))) != NULL; c++) {
		if (c + 1 == e || c[1] != '\n') {
			lone_cr = true;
			break;
		}
	}
	if (lone_cr) {
		struct buf b;
		bool lone = false;
		buf_init(&b, 0);
		for (size_t i = 0; i < hdr_len; i++) {
			if (hdr[i] == '\r' && (i + 1 == hdr_len || hdr[i + 1] != '\n')) {
				mail_buf_puts(&b, "\n ");
				lone = true;
			} else {
				mail_buf_putc(&b, hdr[i]);
			}
		}
		if (lone) {
			hdr_len = b.len;
			copy = mail_buf_take(&b);
			hdr = copy;
		} else {
			buf_free(&b);
		}
	}
	mail_header_iter_init(&it, hdr, hdr_len);
	while (mail_header_iter_next(&it, &n, &v) > 0) {
		for (int f = 0; f < ENV_COUNT; f++) {
			if (!mail_slice_eq_ci(n, env_names[f]))
				continue;
			if (f >= ENV_FROM && f <= ENV_BCC) {
				struct addr_fields *a = &addrs[f];
				a->v = xrealloc(a->v, (a->n + 1) * sizeof(*a->v));
				a->v[a->n++] = v;
			}
			/* other fields: the last one wins, as in Dovecot */
			val[f] = v;
			have[f] = true;
			break;
		}
	}
	struct buf tmp;
	buf_init(&tmp, 0);
	mail_buf_putc(out, '(');
	for (int f = 0; f < ENV_COUNT; f++) {
		if (f > 0)
			mail_buf_putc(out, ' ');
		int src = f;
		/* an absent or empty Sender/Reply-To is From */
		if ((f == ENV_SENDER || f == ENV_REPLY_TO) && !has_addresses(&addrs[f]))
			src = ENV_FROM;
		if (!have[src]) {
			mail_buf_puts(out, "NIL");
			continue;
		}
		if (src >= ENV_FROM && src <= ENV_BCC) {
			write_field_addresses(out, &addrs[src]);
			continue;
		}
		buf_reset(&tmp);
		mail_header_unfold(&tmp, val[src]);
		const char *s = tmp.data ? tmp.data : "";
		if (src == ENV_SUBJECT)
			/* folded: the line ends count as changes (a literal) */
			mail_imap_string_for_humans(out, val[f].ptr, val[f].len);
		else
			mail_imap_nstring_nolf(out, s, tmp.len);
	}
	mail_buf_putc(out, ')');
	buf_free(&tmp);
	for (int f = 0; f < ENV_COUNT; f++)
		free(addrs[f].v);
	free(copy);
}
