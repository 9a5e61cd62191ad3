/*
 * What Sieve sends: vacation replies (RFC 5230 5, RFC 3834 3) with the
 * checks made before any reply (RFC 5230 4.5, RFC 3834 2), and the
 * refusal of reject (RFC 5429 2.2.1, an MDN). Pure: bytes in, bytes out;
 * the delivery module puts them in the queue with MAIL FROM:<>.
 */
#include "sieve-private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "mail.h"

static bool header_value(const char *data, size_t len, const char *name,
			 struct slice *v)
{
	size_t hs = mail_header_size(data, len);
	return mail_header_find(data, hs, name, v);
}

static bool addr_in(const char *addr, size_t n, const char *const *list,
		    size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (list[i] && strlen(list[i]) == n &&
		    strncasecmp(list[i], addr, n) == 0)
			return true;
	return false;
}

/* Whether a field of this name lists one of own. */
static bool field_names_own(const char *data, size_t len, const char *field,
			    const char *const *own, size_t own_count)
{
	size_t hs = mail_header_size(data, len);
	struct mail_header_iter it;
	mail_header_iter_init(&it, data, hs);
	struct slice name, value;
	bool found = false;
	while (!found && mail_header_iter_next(&it, &name, &value) == 1) {
		if (!slice_eq_ci(name, field))
			continue;
		struct mail_address *l = NULL;
		size_t c = mail_address_parse(value.ptr, value.len, &l);
		for (size_t i = 0; i < c && !found; i++) {
			if (!l[i].host || !l[i].mailbox)
				continue;
			char *a = xasprintf("%s@%s", l[i].mailbox, l[i].host);
			found = addr_in(a, strlen(a), own, own_count);
			free(a);
		}
		mail_address_list_free(l, c);
	}
	return found;
}

static const char *const rcpt_fields[] = {"to", "cc", "bcc", "resent-to",
					  "resent-cc", "resent-bcc"};

const char *sieve_vacation_refusal_early(const char *data, size_t len,
					 const char *env_from)
{
	if (env_from == NULL || env_from[0] == '\0')
		return "null envelope sender";
	const char *at = strrchr(env_from, '@');
	size_t ll = at ? (size_t)(at - env_from) : strlen(env_from);
	if ((ll == 13 && strncasecmp(env_from, "mailer-daemon", 13) == 0) ||
	    (ll >= 6 && strncasecmp(env_from, "owner-", 6) == 0) ||
	    (ll >= 8 && strncasecmp(env_from + ll - 8, "-request", 8) == 0) ||
	    (ll == 8 && strncasecmp(env_from, "listserv", 8) == 0) ||
	    (ll == 10 && strncasecmp(env_from, "majordomo", 9) == 0))
		return "the sender is a mailing list or mail system";
	size_t hs = mail_header_size(data, len);
	struct mail_header_iter it;
	mail_header_iter_init(&it, data, hs);
	struct slice name, value;
	bool named = false;
	while (mail_header_iter_next(&it, &name, &value) == 1) {
		if (name.len > 5 && strncasecmp(name.ptr, "list-", 5) == 0)
			return "a mailing list message (List-*)";
		if (slice_eq_ci(name, "precedence")) {
			struct buf b;
			buf_init(&b, 0);
			mail_header_unfold(&b, value);
			bool bulk = b.data && (strcasestr(b.data, "bulk") ||
					       strcasestr(b.data, "list") ||
					       strcasestr(b.data, "junk"));
			buf_free(&b);
			if (bulk)
				return "Precedence: bulk, list or junk";
		}
		if (slice_eq_ci(name, "auto-submitted")) {
			size_t i = 0;
			while (i < value.len && isspace((unsigned char)value.ptr[i]))
				i++;
			if (!(value.len - i >= 2 &&
			      strncasecmp(value.ptr + i, "no", 2) == 0 &&
			      (value.len - i == 2 ||
			       !isalnum((unsigned char)value.ptr[i + 2]))))
				return "Auto-Submitted other than no";
		}
		for (size_t i = 0; i < sizeof(rcpt_fields) / sizeof(*rcpt_fields);
		     i++)
			named |= slice_eq_ci(name, rcpt_fields[i]);
	}
	if (!named)
		return "the user is not named in To, Cc, Bcc or Resent-*";
	return NULL;
}

const char *sieve_vacation_refusal(const char *data, size_t len,
				   const char *env_from,
				   const char *const *own, size_t own_count)
{
	const char *why = sieve_vacation_refusal_early(data, len, env_from);
	if (why != NULL)
		return why;
	if (addr_in(env_from, strlen(env_from), own, own_count))
		return "the sender is the user";
	for (size_t i = 0; i < sizeof(rcpt_fields) / sizeof(*rcpt_fields); i++)
		if (field_names_own(data, len, rcpt_fields[i], own, own_count))
			return NULL;
	return "the user is not named in To, Cc, Bcc or Resent-*";
}

/* A header value with non-ASCII made into RFC 2047 encoded words. */
static void put_text_field(struct buf *out, const char *name, const char *v)
{
	bool ascii = true;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p >= 0x80 || *p == '\r' || *p == '\n')
			ascii = false;
	buf_printf(out, "%s: ", name);
	if (ascii) {
		buf_printf(out, "%s\r\n", v);
		return;
	}
	/* encoded words of at most 45 bytes of text, never splitting a
	 * UTF-8 character */
	size_t n = strlen(v), i = 0;
	bool first = true;
	while (i < n) {
		size_t take = n - i > 45 ? 45 : n - i;
		while (take > 0 && i + take < n &&
		       ((unsigned char)v[i + take] & 0xC0) == 0x80)
			take--;
		if (take == 0)
			take = 1;
		struct buf clean;
		buf_init(&clean, 0);
		for (size_t k = i; k < i + take; k++)
			buf_append_char(&clean, v[k] == '\r' || v[k] == '\n'
					? ' ' : v[k]);
		char *b64 = base64_encode(clean.data, clean.len);
		buf_printf(out, "%s=?UTF-8?B?%s?=", first ? "" : "\r\n ", b64);
		free(b64);
		buf_free(&clean);
		first = false;
		i += take;
	}
	buf_append(out, "\r\n", 2);
}

static void put_date(struct buf *out, time_t now)
{
	struct tm tm;
	gmtime_r(&now, &tm);
	char d[64];
	strftime(d, sizeof(d), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_printf(out, "Date: %s\r\n", d);
}

static uint64_t mix(const char *s, uint64_t h)
{
	for (; s && *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* Text as a body part: 7bit when it is, else base64 lines. */
static void put_text_body(struct buf *out, const char *text)
{
	bool ascii = true;
	for (const char *p = text; *p; p++)
		if ((unsigned char)*p >= 0x80)
			ascii = false;
	buf_append_str(out, "Content-Type: text/plain; charset=utf-8\r\n");
	if (ascii) {
		buf_append_str(out, "Content-Transfer-Encoding: 7bit\r\n\r\n");
		for (const char *p = text; *p; p++) {
			if (*p == '\n' && (p == text || p[-1] != '\r'))
				buf_append_char(out, '\r');
			buf_append_char(out, *p);
		}
		if (out->len < 2 || out->data[out->len - 1] != '\n')
			buf_append(out, "\r\n", 2);
		return;
	}
	buf_append_str(out, "Content-Transfer-Encoding: base64\r\n\r\n");
	char *b64 = base64_encode(text, strlen(text));
	size_t n = strlen(b64);
	for (size_t i = 0; i < n; i += 76) {
		buf_append(out, b64 + i, n - i > 76 ? 76 : n - i);
		buf_append(out, "\r\n", 2);
	}
	free(b64);
}

void sieve_vacation_compose(const struct sieve_action *a, const char *data,
			    size_t len, const char *env_from,
			    const char *recipient, const char *hostname,
			    time_t now, struct buf *out)
{
	struct slice v;
	const char *from = a->from && a->from[0] ? a->from : recipient;
	if (strchr(from, '<') || strchr(from, '"'))
		buf_printf(out, "From: %s\r\n", from);
	else
		buf_printf(out, "From: <%s>\r\n", from);
	buf_printf(out, "To: <%s>\r\n", env_from);
	/* RFC 5230 5.5: "Auto: " and the original subject */
	struct buf subj;
	buf_init(&subj, 0);
	if (a->subject) {
		buf_append_str(&subj, a->subject);
	} else {
		buf_append_str(&subj, "Auto: ");
		if (header_value(data, len, "subject", &v))
			mail_header_decode(&subj, v);
	}
	put_text_field(out, "Subject", subj.data ? subj.data : "");
	buf_free(&subj);
	put_date(out, now);
	uint64_t h = mix(env_from, mix(a->handle, mix(recipient,
		14695981039346656037ull ^ (uint64_t)now)));
	buf_printf(out, "Message-ID: <vacation.%016llx.%lld@%s>\r\n",
		   (unsigned long long)h, (long long)now, hostname);
	/* RFC 5230 5.8 */
	struct buf ids;
	buf_init(&ids, 0);
	if (header_value(data, len, "message-id", &v)) {
		mail_header_unfold(&ids, v);
		buf_append(out, "In-Reply-To: ", 13);
		buf_append(out, ids.data, ids.len);
		buf_append(out, "\r\n", 2);
		struct buf refs;
		buf_init(&refs, 0);
		if (header_value(data, len, "references", &v)) {
			mail_header_unfold(&refs, v);
			buf_append_char(&refs, ' ');
		}
		buf_append(&refs, ids.data, ids.len);
		buf_append(out, "References: ", 12);
		buf_append(out, refs.data, refs.len);
		buf_append(out, "\r\n", 2);
		buf_free(&refs);
	}
	buf_free(&ids);
	buf_append_str(out, "Auto-Submitted: auto-replied\r\n");
	buf_append_str(out, "MIME-Version: 1.0\r\n");
	if (a->mime) {
		/* the reason is a MIME entity: its own header, then body */
		const char *t = a->text ? a->text : "";
		for (const char *p = t; *p; p++) {
			if (*p == '\n' && (p == t || p[-1] != '\r'))
				buf_append_char(out, '\r');
			buf_append_char(out, *p);
		}
		if (out->data[out->len - 1] != '\n')
			buf_append(out, "\r\n", 2);
	} else {
		put_text_body(out, a->text ? a->text : "");
	}
}

void sieve_reject_compose(const char *reason, const char *data, size_t len,
			  const char *env_from, const char *recipient,
			  const char *hostname, time_t now, struct buf *out)
{
	uint64_t h = mix(env_from, mix(recipient, mix(reason,
		14695981039346656037ull ^ (uint64_t)now)));
	char boundary[64];
	snprintf(boundary, sizeof(boundary), "loft-reject-%016llx",
		 (unsigned long long)h);
	buf_printf(out, "From: Mail Delivery Subsystem <MAILER-DAEMON@%s>\r\n",
		   hostname);
	buf_printf(out, "To: <%s>\r\n", env_from);
	struct buf subj;
	buf_init(&subj, 0);
	struct slice v;
	buf_append_str(&subj, "Rejected: ");
	if (header_value(data, len, "subject", &v))
		mail_header_decode(&subj, v);
	put_text_field(out, "Subject", subj.data);
	buf_free(&subj);
	put_date(out, now);
	buf_printf(out, "Message-ID: <reject.%016llx@%s>\r\n",
		   (unsigned long long)h, hostname);
	buf_append_str(out, "Auto-Submitted: auto-replied (rejected)\r\n");
	buf_append_str(out, "MIME-Version: 1.0\r\n");
	buf_printf(out, "Content-Type: multipart/report; "
		   "report-type=disposition-notification;\r\n"
		   "\tboundary=\"%s\"\r\n\r\n", boundary);
	buf_append_str(out, "This is a MIME-encapsulated message.\r\n\r\n");
	buf_printf(out, "--%s\r\n", boundary);
	struct buf text;
	buf_init(&text, 0);
	buf_printf(&text, "Your message to <%s> was automatically rejected:\n"
		   "%s\n", recipient, reason);
	put_text_body(out, text.data);
	buf_free(&text);
	buf_printf(out, "\r\n--%s\r\n", boundary);
	buf_append_str(out, "Content-Type: message/disposition-notification\r\n"
		       "\r\n");
	buf_printf(out, "Reporting-UA: %s; Loft\r\n", hostname);
	buf_printf(out, "Final-Recipient: rfc822; %s\r\n", recipient);
	if (header_value(data, len, "message-id", &v)) {
		struct buf ids;
		buf_init(&ids, 0);
		mail_header_unfold(&ids, v);
		buf_printf(out, "Original-Message-ID: %s\r\n", ids.data);
		buf_free(&ids);
	}
	buf_append_str(out, "Disposition: automatic-action/"
		       "MDN-sent-automatically; deleted\r\n");
	buf_printf(out, "\r\n--%s\r\n", boundary);
	buf_append_str(out, "Content-Type: message/rfc822\r\n\r\n");
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			buf_append_char(out, '\r');
		buf_append_char(out, data[i]);
	}
	if (len == 0 || data[len - 1] != '\n')
		buf_append(out, "\r\n", 2);
	buf_printf(out, "\r\n--%s--\r\n", boundary);
}
