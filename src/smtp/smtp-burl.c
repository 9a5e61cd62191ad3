/*
 * BURL (RFC 4468) on submission: the client names a message (or a part)
 * it stored over IMAP with a URLAUTH URL (RFC 4467) instead of sending
 * it again. The URL is checked and read by imap_urlauth_resolve (for the
 * authenticated account: "submit+" or "user+" that account, "authuser",
 * not expired, the token under the owner's mailbox key); its octets then
 * go through the same path as a BDAT chunk (the From: check, the queue,
 * the Sent copy), so BURL and BDAT pieces mix.
 *
 * A URL that does not resolve answers 554 5.6.6 with the reason and
 * ends the transaction (RFC 4468 4: nothing of the message is sent).
 */
#include "smtp-private.h"

#include <stdlib.h>

#include "imap-urlauth.h"
#include "log.h"

void smtp_task_burl(void *session, struct net_conn *conn, void *arg)
{
	struct smtp_session *s = session;
	struct smtp_burl *req = arg;
	char *data = NULL, *error = NULL;
	size_t len = 0;

	if (imap_urlauth_resolve(s->srv->store, s->srv->auth, s->user.id,
				 req->url, &data, &len, &error) < 0) {
		log_info("smtp", s->sid, "user=%s BURL refused: %s",
			 s->user.address, error ? error : "?");
		smtp_transaction_reset(s);
		net_conn_printf(conn, "554 5.6.6 IMAP URL resolution failed: "
				"%s\r\n", error ? error : "unknown error");
		free(error);
		goto out;
	}
	/* in pieces of at most SMTP_CHUNK, as BDAT's bytes go */
	for (size_t off = 0; off < len;) {
		size_t n = len - off < SMTP_CHUNK ? len - off : SMTP_CHUNK;
		s->data_size += n;
		if (s->data_size > s->live->max_message_size)
			s->data_too_big = true;
		if (!s->data_too_big) {
			buf_append(&s->chunk, data + off, n);
			smtp_keep_head(s, data + off, n);
			smtp_write_chunk(s, conn);
		}
		off += n;
	}
	free(data);
	if (req->last) {
		s->state = SMTP_READY;
		smtp_task_end(s, conn, NULL);
	} else {
		s->state = SMTP_MAIL;
		net_conn_printf(conn, "250 2.5.0 %llu octets received\r\n",
				(unsigned long long)s->data_size);
	}
out:
	free(req->url);
	free(req);
}
