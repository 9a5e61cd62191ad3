/*
 * Long-lived responses (EventSource, RFC 8620 7.3): after the handler has
 * sent the head and returned, the connection is idle as far as the net
 * layer is concerned (no task, no thread). Writers on any thread append
 * to the stream's queue under its lock and post one flush to the
 * connection's I/O thread, which writes the queue as one chunk. A client
 * that leaves more than max_unread bytes unread (queued plus not yet
 * taken by the socket) is dropped at once.
 *
 * Life: one reference for the handler (http_stream_unref), one for the
 * connection until the stream is over. Everything that changes the
 * stream's state runs on the I/O thread; other threads only queue bytes
 * and read the atomic `over`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "http-private.h"
#include "log.h"

struct http_stream {
	atomic_int refs;
	struct net_conn *conn;        /* referenced */
	struct http_stream_hooks hooks;
	void *ctx;
	atomic_bool over;
	size_t max_unread;
	bool chunked;
	/* io */
	bool live;                    /* the handler's task has finished */
	bool end_pending;             /* http_stream_end before that */
	/* mu */
	pthread_mutex_t mu;
	struct buf queue;
	bool flush_posted;
	bool overflow;
	int64_t account_id;
	char id[12];
};

void http_stream_ref(struct http_stream *s)
{
	atomic_fetch_add(&s->refs, 1);
}

void http_stream_unref(struct http_stream **sp)
{
	struct http_stream *s = *sp;
	*sp = NULL;
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	net_conn_unref(&s->conn);
	buf_free(&s->queue);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int64_t http_stream_account_id(const struct http_stream *s)
{
	return s->account_id;
}

const char *http_stream_id(const struct http_stream *s)
{
	return s->id;
}

struct http_stream *http_response_stream(struct http_response *resp,
					 const struct http_stream_hooks *hooks,
					 void *ctx)
{
	struct http_request *req = resp->req;
	struct http_conn *hc = req->hc;
	if (resp->started || resp->broken)
		return NULL;
	http_response_set_header(resp, "Cache-Control", "no-cache");
	http_response_set_header(resp, "X-Accel-Buffering", "no");
	resp->enc = HTTP_ENC_IDENTITY;
	if (http_response_write_head(resp, 0, false) < 0)
		return NULL;
	struct http_stream *s = xcalloc(1, sizeof(*s));
	atomic_init(&s->refs, 2);
	s->conn = hc->conn;
	net_conn_ref(s->conn);
	s->hooks = *hooks;
	s->ctx = ctx;
	s->max_unread = hooks->max_unread != 0 ? hooks->max_unread :
		http_set(hc->server)->stream_max_unread;
	s->chunked = resp->chunked;
	pthread_mutex_init(&s->mu, NULL);
	buf_init(&s->queue, 0);
	s->account_id = req->has_user ? req->user.id : 0;
	snprintf(s->id, sizeof(s->id), "%s", net_conn_id(hc->conn));
	resp->streaming = true;
	hc->stream = s;
	net_conn_set_timeout(hc->conn, hooks->tick_secs);
	return s;
}

/* The stream is over (I/O thread): the owner is told once. */
static void stream_finish(struct http_conn *hc, struct http_stream *s)
{
	if (hc->stream != s)
		return;    /* already over */
	atomic_store(&s->over, true);
	hc->stream = NULL;
	s->live = false;
	if (s->hooks.closed != NULL)
		s->hooks.closed(s, s->ctx);
	http_stream_unref(&s);
}

static void stream_drop(struct http_conn *hc, struct http_stream *s,
			const char *why)
{
	log_info("http", net_conn_id(hc->conn), "event stream to %s dropped: %s",
		 net_conn_peer(hc->conn), why);
	stream_finish(hc, s);
	hc->state = HTTP_ST_CLOSING;
	net_conn_abort(hc->conn);
}

/* Writes what is queued as one chunk (I/O thread). */
static void stream_flush_io(void *session, struct net_conn *conn, void *arg)
{
	struct http_conn *hc = session;
	struct http_stream *s = hc->stream;
	if (s == NULL || !s->live)
		return;
	pthread_mutex_lock(&s->mu);
	s->flush_posted = false;
	bool overflow = s->overflow;
	size_t len = s->queue.len;
	char *data = len > 0 ? buf_steal(&s->queue, NULL) : NULL;
	pthread_mutex_unlock(&s->mu);
	if (!overflow && len > 0 &&
	    net_conn_output_pending(conn) + len > s->max_unread)
		overflow = true;
	if (overflow) {
		free(data);
		stream_drop(hc, s, "the client does not read");
		return;
	}
	if (len > 0) {
		char head[24];
		int n = snprintf(head, sizeof(head), "%zx\r\n", len);
		if ((s->chunked && net_conn_write(conn, head, (size_t)n) < 0) ||
		    net_conn_write(conn, data, len) < 0 ||
		    (s->chunked && net_conn_write(conn, "\r\n", 2) < 0)) {
			free(data);
			stream_finish(hc, s);
			return;
		}
	}
	free(data);
}

static void stream_end_io(void *session, struct net_conn *conn, void *arg);

/* The handler's task has ended: the request's memory goes, the stream
 * lives on (I/O thread). */
static void stream_live_io(void *session, struct net_conn *conn, void *arg)
{
	struct http_conn *hc = session;
	struct http_stream *s = hc->stream;
	if (s == NULL || atomic_load(&s->over))
		return;
	s->live = true;
	http_conn_request_done(hc);
	stream_flush_io(session, conn, arg);
	if (s->end_pending && hc->stream == s)
		stream_end_io(session, conn, arg);
}

void http_stream_task_end(struct http_conn *hc)
{
	net_conn_post(hc->conn, stream_live_io, NULL);
}

int http_stream_write(struct http_stream *s, const void *data, size_t len)
{
	if (atomic_load(&s->over))
		return -1;
	pthread_mutex_lock(&s->mu);
	if (s->queue.len + len > s->max_unread) {
		s->overflow = true;
		buf_reset(&s->queue);
	} else {
		buf_append(&s->queue, data, len);
	}
	bool post = !s->flush_posted;
	s->flush_posted = true;
	pthread_mutex_unlock(&s->mu);
	if (post && net_conn_post(s->conn, stream_flush_io, NULL) < 0)
		return -1;
	return 0;
}

static void stream_end_io(void *session, struct net_conn *conn, void *arg)
{
	struct http_conn *hc = session;
	struct http_stream *s = hc->stream;
	if (s == NULL)
		return;
	if (!s->live) {
		s->end_pending = true;
		return;
	}
	stream_flush_io(session, conn, arg);
	if (hc->stream != s)
		return;
	bool chunked = s->chunked;
	stream_finish(hc, s);
	if (!chunked) {
		hc->state = HTTP_ST_CLOSING;
		net_conn_close(conn);
		return;
	}
	net_conn_write(conn, "0\r\n\r\n", 5);
	http_conn_next_request(hc);
}

void http_stream_end(struct http_stream *s)
{
	if (atomic_load(&s->over))
		return;
	/* Bytes queued before stay ahead of the end: flushed first. */
	net_conn_post(s->conn, stream_end_io, NULL);
}

/* ---- from the connection's hooks (I/O thread) ---------------------- */

void http_stream_conn_closed(struct http_conn *hc)
{
	if (hc->stream != NULL)
		stream_finish(hc, hc->stream);
}

void http_stream_tick(struct http_conn *hc)
{
	struct http_stream *s = hc->stream;
	if (s != NULL && s->live && s->hooks.tick != NULL)
		s->hooks.tick(s, s->ctx);
}

void http_stream_input(struct http_conn *hc)
{
	/* An EventSource client sends nothing after its request; the next
	 * pipelined request waits for the stream's end, within bounds. */
	struct evbuffer *in = net_conn_input(hc->conn);
	if (evbuffer_get_length(in) > HTTP_STREAM_MAX_INPUT && hc->stream)
		stream_drop(hc, hc->stream, "it sent too much while streaming");
}

void http_stream_shutdown(struct http_conn *hc)
{
	if (hc->stream != NULL)
		stream_finish(hc, hc->stream);
}
