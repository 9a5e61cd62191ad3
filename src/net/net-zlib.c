/*
 * COMPRESS=DEFLATE (RFC 4978): a bufferevent filter with raw deflate
 * (no zlib header) in both directions. Writes are deflated as they come
 * (Z_NO_FLUSH) and the first one of a batch wakes the I/O thread, which
 * flushes (Z_SYNC_FLUSH) once it runs: a batch of writes, e.g. a FETCH
 * response written line by line, costs one flush, and the client still
 * sees every response whole (RFC 4978 4). The deflate window is kept small (8 KiB, memLevel 6) to
 * keep a compressed idle session at tens of KB; inflate must accept the
 * full 32 KiB window a client may use.
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

struct net_zlib {
	z_stream in;
	z_stream out;
	struct bufferevent *bev;      /* the filter */
	struct event *flush_ev;
	atomic_bool flush_pending;
};

static void net_zlib_free(void *ctx)
{
	struct net_zlib *z = ctx;
	if (z->flush_ev != NULL)
		event_free(z->flush_ev);
	inflateEnd(&z->in);
	deflateEnd(&z->out);
	free(z);
}

static void net_zlib_flush_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct net_zlib *z = ctx;
	atomic_store(&z->flush_pending, false);
	net_zlib_flush(z->bev);
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

static enum bufferevent_filter_result
net_zlib_input(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
	       enum bufferevent_flush_mode mode, void *ctx)
{
	struct net_zlib *z = ctx;
	bool produced = false;
	if (net_zlib_pump(&z->in, false, false, src, dst, &produced) < 0)
		return BEV_ERROR;
	return produced ? BEV_OK : BEV_NEED_MORE;
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

struct bufferevent *net_zlib_wrap(struct bufferevent *bev, int options)
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
	struct bufferevent *f = bufferevent_filter_new(bev, net_zlib_input,
						       net_zlib_output, options,
						       net_zlib_free, z);
	if (f == NULL)
		net_zlib_free(z);
	else
		z->bev = f;
	return f;
}
