/*
 * LMTP's worker tasks: each hands its part to the shared delivery module
 * (src/delivery: recipient resolution, one copy per mailbox with its
 * trace fields, commits) and writes the replies. A recipient's 250 is
 * written only after its copy is durable.
 */
#include "lmtp-private.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static void write_reply(struct net_conn *conn, const struct delivery_reply *r)
{
	lmtp_count_reply((char)('0' + r->code / 100));
	net_conn_printf(conn, "%d %s %s\r\n", r->code, r->status, r->text);
}

void lmtp_task_rcpt(void *session, struct net_conn *conn, void *arg)
{
	struct lmtp_session *s = session;
	struct lmtp_rcpt_request *req = arg;
	struct delivery_reply rep;
	char text[LMTP_PATH_TEXT];

	if (delivery_rcpt_count(s->ds) == 0) {
		struct delivery_envelope env = {
			.sender = s->sender,
			.helo = s->lhlo,
			.peer = net_conn_peer(conn),
			.with = "LMTP",
			.id = s->txn_id,
			.declared_size = s->declared_size,
		};
		delivery_begin(s->ds, &env);
	}
	lmtp_path_text(&req->path, text, sizeof(text));
	delivery_rcpt(s->ds, req->path.address, text, &rep);
	if (rep.code == 250)
		s->errors = 0;
	write_reply(conn, &rep);
	free(req);
}

void lmtp_task_data_chunk(void *session, struct net_conn *conn, void *arg)
{
	struct lmtp_session *s = session;

	delivery_data(s->ds, s->chunk.data, s->chunk.len);
	buf_reset(&s->chunk);
}

void lmtp_task_data_end(void *session, struct net_conn *conn, void *arg)
{
	struct lmtp_session *s = session;
	unsigned n = delivery_rcpt_count(s->ds);

	if (s->data_too_big) {
		delivery_too_big(s->ds);
	} else {
		delivery_data(s->ds, s->chunk.data, s->chunk.len);
		delivery_commit(s->ds);
	}
	buf_reset(&s->chunk);
	/* RFC 2033 4.2: one reply per accepted RCPT, in RCPT order; every
	 * 250 follows the commit that made its copy durable. */
	for (unsigned i = 0; i < n; i++)
		write_reply(conn, delivery_result(s->ds, i));
	lmtp_transaction_reset(s);
}

void lmtp_task_reset(void *session, struct net_conn *conn, void *arg)
{
	struct lmtp_session *s = session;
	char *text = arg;

	lmtp_transaction_reset(s);
	net_conn_printf(conn, "%s\r\n", text);
	free(text);
}

void lmtp_task_quit(void *session, struct net_conn *conn, void *arg)
{
	struct lmtp_session *s = session;

	lmtp_transaction_reset(s);
	delivery_session_destroy(&s->ds);
	net_conn_printf(conn, "221 2.0.0 %s Bye\r\n", s->server->hostname);
	net_conn_close(conn);
}

/* Waits (on a worker: the I/O thread never waits) until the client has
 * read its replies down below LMTP_OUTPUT_MAX; net drops a client that
 * reads nothing for its write timeout. */
void lmtp_task_drain(void *session, struct net_conn *conn, void *arg)
{
	/* 60 s at most, whatever net's settings are */
	for (int i = 0; i < 6000; i++) {
		if (net_conn_output_pending(conn) <= LMTP_OUTPUT_MAX)
			return;
		/* blocks while above net's high-water mark */
		if (net_conn_write(conn, "", 0) < 0)
			return;
		if (net_conn_output_pending(conn) > LMTP_OUTPUT_MAX)
			usleep(10000);
	}
	log_info("lmtp", ((struct lmtp_session *)session)->sid,
		 "client reads no replies, closing");
	net_conn_close(conn);
}
