/*
 * COMPRESS=DEFLATE (RFC 4978): a bufferevent filter with raw deflate
 * (no zlib header) in both directions. Writes are deflated as they come
 * (Z_NO_FLUSH) and the first one of a batch wakes the I/O thread, which
 * flushes (Z_SYNC_FLUSH) once it runs: a batch of writes, e.g. a FETCH
 * response written line by line, costs one flush, and the client still
 * sees every response whole (RFC 4978 4). The deflate window is kept small (8 KiB, memLevel 6) to
 * keep a compressed idle session at tens of KB; inflate must accept the
 * full 32 KiB window a client may use.
 *
 * Input is bounded: deflate packs ~1000:1, so a few KB from a client
 * could otherwise become MBs in the session's input buffer. Each call
 * inflates only until the session's input holds NET_ZLIB_IN_MAX; the rest
 * of the compressed bytes stay in the socket's buffer (itself capped by a
 * read high-water mark, so the socket is not read further). Once the
 * front-end has drained its input, an event on the I/O thread runs the
 * filter again: from the loop, not inside the drain, so one input call
 * cannot go on through an endless pipelined stream. A broken stream, or
 * bytes after its end (RFC 4978 has no way to end compression), is a
 * fatal error: the connection is dropped.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <zlib.h>

#include "buf.h"
#include "net-private.h"

#define NET_ZLIB_CHUNK 4096
/* Inflated bytes the front-end may have buffered, and compressed bytes
 * read from the socket ahead of inflation. Both above every line limit a
 * front-end waits for before it consumes input (IMAP's parser consumes
 * as it goes; its IDLE/AUTHENTICATE lines are shorter). */
#define NET_ZLIB_IN_MAX (64 * 1024)
#define NET_ZLIB_RAW_MAX (64 * 1024)

struct net_zlib {
	z_stream in;
	z_stream out;
	struct bufferevent *bev;      /* the filter */
	struct event *flush_ev;
	struct event *resume_ev;
	struct event *fail_ev;
	atomic_bool flush_pending;
	atomic_bool in_blocked;       /* stopped at the bound with input left */
	bool detached;                /* the connection is being freed */
	bool in_more;                 /* inflate stopped with output full */
	bool in_failed;               /* bad data or data after the end */
	bool in_ended;                /* Z_STREAM_END seen */
};

static void net_zlib_free(void *ctx)
{
	struct net_zlib *z = ctx;
	if (z->flush_ev != NULL)
		event_free(z->flush_ev);
	if (z->resume_ev != NULL)
		event_free(z->resume_ev);
	if (z->fail_ev != NULL)
		event_free(z->fail_ev);
	inflateEnd(&z->in);
	deflateEnd(&z->out);
	free(z);
}

static void net_zlib_drained(struct evbuffer *buf,
			     const struct evbuffer_cb_info *info, void *ctx);

static void net_zlib_flush_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct net_zlib *z = ctx;
	atomic_store(&z->flush_pending, false);
	if (!z->detached)
		net_zlib_flush(z->bev);
}

void net_zlib_detach(struct net_zlib *z)
{
	z->detached = true;
	event_del(z->flush_ev);
	event_del(z->resume_ev);
	event_del(z->fail_ev);
	evbuffer_remove_cb(bufferevent_get_input(z->bev), net_zlib_drained, z);
}

void net_zlib_flush(struct bufferevent *filter)
{
	/* The socket's lock first, as libevent's own callbacks take them
	 * (see net_conn_write). */
	struct bufferevent *under = bufferevent_get_underlying(filter);
	bufferevent_lock(under);
	bufferevent_flush(filter, EV_WRITE, BEV_FLUSH);
	bufferevent_unlock(under);
}

/* Runs inflate or deflate over all of src into dst. */
static int net_zlib_pump(z_stream *zs, bool deflating, bool flush,
			 struct evbuffer *src, struct evbuffer *dst,
			 bool *produced_r)
{
	for (;;) {
		struct evbuffer_iovec in = {NULL, 0};
		bool last = evbuffer_peek(src, -1, NULL, &in, 1) == 0 ||
			evbuffer_get_length(src) == in.iov_len;
		struct evbuffer_iovec out;
		if (evbuffer_reserve_space(dst, NET_ZLIB_CHUNK, &out, 1) < 1)
			return -1;
		zs->next_in = in.iov_base;
		zs->avail_in = (uInt)in.iov_len;
		zs->next_out = out.iov_base;
		zs->avail_out = (uInt)out.iov_len;
		int r = deflating ? deflate(zs, last && flush ? Z_SYNC_FLUSH
							 : Z_NO_FLUSH)
				  : inflate(zs, Z_SYNC_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END)
			return -1;
		size_t consumed = in.iov_len - zs->avail_in;
		out.iov_len -= zs->avail_out;
		bool full = zs->avail_out == 0;
		evbuffer_commit_space(dst, &out, 1);
		evbuffer_drain(src, consumed);
		if (out.iov_len > 0)
			*produced_r = true;
		/* Done when the input is used up and zlib had room to spare
		 * (nothing left inside it to flush). */
		if (evbuffer_get_length(src) == 0 && !full)
			return 0;
		if (consumed == 0 && out.iov_len == 0)
			return 0;
	}
}

/* Reports a broken input stream from the loop, where the filter is not
 * inside libevent's own processing (and is alive: freeing it frees this
 * event). */
static void net_zlib_fail_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct net_zlib *z = ctx;
	if (z->detached)
		return;
	bufferevent_trigger_event(z->bev, BEV_EVENT_READING | BEV_EVENT_ERROR,
				  0);
}

/* A fatal input error: everything buffered is dropped and the
 * connection's event callback sees an error (libevent 2.1 ignores a
 * filter's BEV_ERROR on input). */
static enum bufferevent_filter_result net_zlib_input_fail(struct net_zlib *z,
							   struct evbuffer *src)
{
	evbuffer_drain(src, evbuffer_get_length(src));
	if (!z->in_failed) {
		z->in_failed = true;
		event_active(z->fail_ev, EV_TIMEOUT, 0);
	}
	return BEV_ERROR;
}

/* Inflates src into dst until dst holds NET_ZLIB_IN_MAX (or limit more
 * bytes) while compressed input is left; what zlib holds inside after the
 * input is used up (a few hundred bytes at most) is let out in full, as
 * nothing would call us again for it. */
static enum bufferevent_filter_result
net_zlib_input(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
	       enum bufferevent_flush_mode mode, void *ctx)
{
	struct net_zlib *z = ctx;
	z_stream *zs = &z->in;
	if (z->in_failed)
		return net_zlib_input_fail(z, src);
	if (z->in_ended) {
		if (evbuffer_get_length(src) > 0)
			return net_zlib_input_fail(z, src);
		return BEV_NEED_MORE;
	}
	size_t have = evbuffer_get_length(dst);
	size_t room = have < NET_ZLIB_IN_MAX ? NET_ZLIB_IN_MAX - have : 0;
	if (limit >= 0 && (size_t)limit < room)
		room = (size_t)limit;
	size_t produced = 0;
	for (;;) {
		struct evbuffer_iovec in = {NULL, 0};
		if (evbuffer_peek(src, -1, NULL, &in, 1) < 1)
			in.iov_len = 0;
		if (in.iov_len == 0 && !z->in_more)
			break;
		if (in.iov_len > 0 && produced >= room) {
			/* net_zlib_drained resumes */
			atomic_store(&z->in_blocked, true);
			break;
		}
		size_t want = NET_ZLIB_CHUNK;
		if (in.iov_len > 0 && room - produced < want)
			want = room - produced;
		struct evbuffer_iovec out;
		if (evbuffer_reserve_space(dst, (ev_ssize_t)want, &out, 1) < 1)
			return net_zlib_input_fail(z, src);
		if (out.iov_len > want)
			out.iov_len = want;
		zs->next_in = in.iov_base;
		zs->avail_in = (uInt)in.iov_len;
		zs->next_out = out.iov_base;
		zs->avail_out = (uInt)out.iov_len;
		int r = inflate(zs, Z_SYNC_FLUSH);
		size_t consumed = in.iov_len - zs->avail_in;
		out.iov_len -= zs->avail_out;
		z->in_more = zs->avail_out == 0;
		evbuffer_commit_space(dst, &out, 1);
		evbuffer_drain(src, consumed);
		produced += out.iov_len;
		if (r == Z_STREAM_END) {
			z->in_ended = true;
			z->in_more = false;
			if (evbuffer_get_length(src) > 0)
				return net_zlib_input_fail(z, src);
			break;
		}
		if (r != Z_OK && r != Z_BUF_ERROR)
			return net_zlib_input_fail(z, src);
		if (consumed == 0 && out.iov_len == 0)
			break;
	}
	return produced > 0 ? BEV_OK : BEV_NEED_MORE;
}

/* The session's input shrank (on the I/O thread or a task's worker). */
static void net_zlib_drained(struct evbuffer *buf,
			     const struct evbuffer_cb_info *info, void *ctx)
{
	struct net_zlib *z = ctx;
	if (info->n_deleted > 0 && atomic_load(&z->in_blocked) &&
	    evbuffer_get_length(buf) < NET_ZLIB_IN_MAX)
		event_active(z->resume_ev, EV_TIMEOUT, 0);
}

static void net_zlib_resume_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct net_zlib *z = ctx;
	if (!atomic_exchange(&z->in_blocked, false) || z->detached)
		return;
	/* A read event on the socket's bufferevent runs the filter (unless
	 * reading is off for a task: net-conn kicks it when that ends). */
	struct bufferevent *under = bufferevent_get_underlying(z->bev);
	bufferevent_trigger(under, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
			    BEV_TRIG_DEFER_CALLBACKS);
}

static enum bufferevent_filter_result
net_zlib_output(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
		enum bufferevent_flush_mode mode, void *ctx)
{
	struct net_zlib *z = ctx;
	bool produced = false;
	bool flush = mode != BEV_NORMAL;
	if (!flush && evbuffer_get_length(src) == 0)
		return BEV_NEED_MORE;
	if (net_zlib_pump(&z->out, true, flush, src, dst, &produced) < 0)
		return BEV_ERROR;
	if (!flush && !atomic_exchange(&z->flush_pending, true))
		event_active(z->flush_ev, EV_TIMEOUT, 0);
	return produced ? BEV_OK : BEV_NEED_MORE;
}

struct bufferevent *net_zlib_wrap(struct bufferevent *bev, int options,
				  struct net_zlib **z_r)
{
	struct net_zlib *z = xcalloc(1, sizeof(*z));
	if (inflateInit2(&z->in, -MAX_WBITS) != Z_OK) {
		free(z);
		return NULL;
	}
	if (deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -13, 6,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		inflateEnd(&z->in);
		free(z);
		return NULL;
	}
	z->flush_ev = event_new(bufferevent_get_base(bev), -1, 0,
				net_zlib_flush_cb, z);
	z->resume_ev = event_new(bufferevent_get_base(bev), -1, 0,
				 net_zlib_resume_cb, z);
	z->fail_ev = event_new(bufferevent_get_base(bev), -1, 0,
			       net_zlib_fail_cb, z);
	struct bufferevent *f = bufferevent_filter_new(bev, net_zlib_input,
						       net_zlib_output, options,
						       net_zlib_free, z);
	if (f == NULL) {
		net_zlib_free(z);
		return NULL;
	}
	z->bev = f;
	*z_r = z;
	/* No read high-water mark on the filter: libevent 2.1 would refill
	 * it inside the front-end's drain. The socket stops being read while
	 * this much compressed input waits. */
	evbuffer_add_cb(bufferevent_get_input(f), net_zlib_drained, z);
	bufferevent_setwatermark(bev, EV_READ, 0, NET_ZLIB_RAW_MAX);
	return f;
}
