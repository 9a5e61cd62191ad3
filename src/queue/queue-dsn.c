/*
 * Delivery status notifications (RFC 3464, RFC 3461 for what the sender
 * asked): a multipart/report with a human part, the
 * message/delivery-status part (one block per recipient), and the
 * original message (RET=FULL, and by default for failures) or its
 * header (RET=HDRS, and every delay warning). Sent from the null sender
 * to the envelope sender through the queue itself, so a local sender has
 * it in INBOX at once and a remote one gets it like any other mail.
 */
#include "queue-private.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* The original's header (up to the first empty line). */
static size_t header_len(const char *data, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (data[i] == '\n' && data[i + 1] == '\n')
			return i + 1;
		if (data[i] == '\n' && data[i + 1] == '\r' && i + 2 < len &&
		    data[i + 2] == '\n')
			return i + 3;
	}
	return len;
}

static void rfc5322_date(time_t t, char *out, size_t size)
{
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(out, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

static const char *action_name(enum qdsn_kind kind, bool relayed)
{
	switch (kind) {
	case QDSN_FAILED: return "failed";
	case QDSN_DELAYED: return "delayed";
	default: return relayed ? "relayed" : "delivered";
	}
}

static void status_code(const struct queue_rcpt_result *r, enum qdsn_kind kind,
			char *out, size_t size)
{
	if (r->enhanced[0] != '\0')
		snprintf(out, size, "%s", r->enhanced);
	else if (kind == QDSN_FAILED)
		snprintf(out, size, "5.0.0");
	else if (kind == QDSN_DELAYED)
		snprintf(out, size, "4.0.0");
	else
		snprintf(out, size, "2.0.0");
}

static void human_part(struct buf *b, const struct queue *q,
		       const struct qdsn *d, enum qdsn_kind kind)
{
	buf_printf(b, "This is the mail system at %s.\r\n\r\n",
		   q->set.hostname);
	if (kind == QDSN_FAILED)
		buf_append_str(b, "Your message could not be delivered to one "
			       "or more recipients. It is attached below.\r\n");
	else if (kind == QDSN_DELAYED)
		buf_printf(b, "Your message has not been delivered yet to the "
			   "recipients below. Delivery will be retried until "
			   "%llu days after it was sent; you need do nothing "
			   "now.\r\n",
			   (unsigned long long)(q->set.max_age / 86400));
	else
		buf_append_str(b, "Your message was delivered to the recipients "
			       "below.\r\n");
	buf_append_str(b, "\r\n");
	for (size_t i = 0; i < d->count; i++) {
		const struct qdsn_rcpt *r = &d->rcpts[i];
		buf_printf(b, "<%s>: ", r->address);
		if (r->result->code != 0)
			buf_printf(b, "%d %s %s\r\n", r->result->code,
				   r->result->enhanced, r->result->text);
		else
			buf_printf(b, "%s\r\n", r->result->text);
	}
}

static void status_part(struct buf *b, const struct queue *q,
			const struct qdsn *d, enum qdsn_kind kind)
{
	char date[64], st[16];

	buf_printf(b, "Reporting-MTA: dns; %s\r\n", q->set.hostname);
	if (d->envid != NULL)
		buf_printf(b, "Original-Envelope-Id: %s\r\n", d->envid);
	rfc5322_date(d->created, date, sizeof(date));
	buf_printf(b, "Arrival-Date: %s\r\n", date);
	for (size_t i = 0; i < d->count; i++) {
		const struct qdsn_rcpt *r = &d->rcpts[i];
		status_code(r->result, kind, st, sizeof(st));
		buf_append_str(b, "\r\n");
		if (r->orcpt != NULL)
			buf_printf(b, "Original-Recipient: %s\r\n", r->orcpt);
		buf_printf(b, "Final-Recipient: rfc822; %s\r\n", r->address);
		buf_printf(b, "Action: %s\r\n", action_name(kind, !d->local));
		buf_printf(b, "Status: %s\r\n", st);
		if (d->remote != NULL && d->remote[0] != '\0' && !d->local) {
			char host[300];
			snprintf(host, sizeof(host), "%s", d->remote);
			host[strcspn(host, "[")] = '\0';
			buf_printf(b, "Remote-MTA: dns; %s\r\n", host);
		}
		if (r->result->code != 0) {
			/* Diagnostic-Code is the remote's reply, one line */
			char text[300];
			const char *said = strstr(r->result->text, " said: ");
			snprintf(text, sizeof(text), "%s",
				 said ? said + 7 : r->result->text);
			for (char *p = text; *p; p++)
				if (*p == '\r' || *p == '\n')
					*p = ' ';
			buf_printf(b, "Diagnostic-Code: smtp; %d %s %s\r\n",
				   r->result->code, r->result->enhanced, text);
		}
		rfc5322_date(time(NULL), date, sizeof(date));
		buf_printf(b, "Last-Attempt-Date: %s\r\n", date);
		if (kind == QDSN_DELAYED) {
			rfc5322_date(d->created + (time_t)q->set.max_age, date,
				     sizeof(date));
			buf_printf(b, "Will-Retry-Until: %s\r\n", date);
		}
	}
}

int queue_dsn_enqueue(struct queue *q, const struct qdsn *d,
		      enum qdsn_kind kind, const char *orig, size_t orig_len,
		      struct queue_error *err)
{
	struct buf b;
	char date[64], boundary[128];
	/* RFC 3461 4.3: RET=HDRS, or a delay: the header only */
	bool full = kind == QDSN_FAILED && d->ret != QUEUE_RET_HDRS;
	int rc;

	snprintf(boundary, sizeof(boundary), "%s.%d/%s.dsn", d->id, (int)kind,
		 q->set.hostname);
	rfc5322_date(time(NULL), date, sizeof(date));
	buf_init(&b, 0);
	buf_printf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
		   q->set.hostname);
	buf_printf(&b, "To: <%s>\r\n", d->sender);
	buf_printf(&b, "Subject: %s\r\n",
		   kind == QDSN_FAILED	  ? "Undelivered Mail Returned to Sender"
		   : kind == QDSN_DELAYED ? "Delayed Mail (still being retried)"
					  : "Successful Mail Delivery Report");
	buf_printf(&b, "Date: %s\r\n", date);
	buf_printf(&b, "Message-ID: <%s.%d.%lld@%s>\r\n", d->id, (int)kind,
		   (long long)time(NULL), q->set.hostname);
	buf_append_str(&b, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	buf_printf(&b, "Content-Type: multipart/report; "
		   "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n\r\n",
		   boundary);
	buf_printf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		   boundary);
	human_part(&b, q, d, kind);
	buf_printf(&b, "\r\n--%s\r\nContent-Type: message/delivery-status\r\n\r\n",
		   boundary);
	status_part(&b, q, d, kind);
	buf_printf(&b, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", boundary,
		   full ? "message/rfc822" : "text/rfc822-headers");
	if (orig != NULL) {
		size_t n = full ? orig_len : header_len(orig, orig_len);
		if (d->prefix != NULL)
			buf_append_str(&b, d->prefix);
		buf_append(&b, orig, n);
		if (n > 0 && orig[n - 1] != '\n')
			buf_append_str(&b, "\r\n");
	}
	buf_printf(&b, "\r\n--%s--\r\n", boundary);

	struct queue_rcpt rcpt = {.address = d->sender,
				  .notify = QUEUE_NOTIFY_NEVER};
	struct queue_envelope env = {
		.sender = "",
		.rcpts = &rcpt,
		.rcpt_count = 1,
		.flags = QUEUE_F_SIGN | QUEUE_F_8BITMIME,
	};
	rc = queue_enqueue_internal(q, &env, b.data, b.len, err);
	if (rc < 0)
		log_error("queue", NULL, "%s: cannot send the %s DSN to <%s>: %s",
			  d->id, action_name(kind, false), d->sender, err->msg);
	else
		log_info("queue", NULL, "%s: %s DSN sent to <%s>", d->id,
			 action_name(kind, false), d->sender);
	buf_free(&b);
	return rc;
}

void queue_dsn_send(struct queue *q, const struct qjob *job,
		    enum qdsn_kind kind, const bool *which)
{
	struct qbody body;
	const char *orig = NULL;
	size_t orig_len = 0, n = 0;
	struct queue_error err = {0};
	struct qdsn_rcpt *rcpts = xcalloc(job->rcpt_count, sizeof(*rcpts));

	/* without the bytes the DSN goes without the original */
	if (qbody_open(q, job->id, job->sha, job->body_size, &body) == 0 &&
	    body.len > 0) {
		orig = body.data;
		orig_len = body.len;
	}
	for (size_t i = 0; i < job->rcpt_count; i++) {
		if (!which[i])
			continue;
		rcpts[n].address = job->rcpts[i].address;
		rcpts[n].orcpt = job->rcpts[i].orcpt;
		rcpts[n].result = &job->rcpts[i].result;
		n++;
	}
	struct qdsn d = {
		.id = job->id, .sender = job->sender, .envid = job->envid,
		.ret = job->ret, .created = job->created, .prefix = job->prefix,
		.remote = job->remote, .local = job->local, .rcpts = rcpts,
		.count = n,
	};
	queue_dsn_enqueue(q, &d, kind, orig, orig_len, &err);
	qbody_close(&body);
	free(rcpts);
}
