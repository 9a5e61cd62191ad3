/*
 * Fuzz target for COMPRESS=DEFLATE (src/net/net-zlib.c, RFC 4978): the
 * bufferevent filter a compressed session's bytes go through, on a
 * bufferevent pair in one event loop.
 *
 * mode 0: raw client bytes go through the inflating side (garbage must
 *         give an error, never a crash or a hang);
 * mode 1: the client's text, raw-deflated by zlib with the full 32 KiB
 *         window and a sync flush at points the fuzzer picks, must come
 *         out of the filter unchanged, however it is cut into writes;
 * mode 2: text written to the filter in pieces and flushed must inflate
 *         (by zlib) to the same text.
 *
 * Input: [mode][nsteps][steps...][text]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <zlib.h>

#include "buf.h"
#include "net-private.h"

static struct event_base *base;

static void run_loop(void)
{
	for (int i = 0; i < 64; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

static void drain(struct bufferevent *bev, struct buf *out)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);
	if (n == 0)
		return;
	char *tmp = xmalloc(n);
	evbuffer_remove(in, tmp, n);
	buf_append(out, tmp, n);
	free(tmp);
}

/* Writes data to bev in pieces of steps[k] * 16 + 1 bytes, running the
 * loop and collecting what arrives at reader after each. */
static void pump(struct bufferevent *bev, struct bufferevent *reader,
		 const uint8_t *data, size_t len, const uint8_t *steps,
		 size_t nsteps, struct buf *got)
{
	size_t pos = 0, k = 0;
	while (pos < len) {
		size_t step = nsteps ? (size_t)steps[k++ % nsteps] * 16 + 1 : len;
		size_t n = len - pos < step ? len - pos : step;
		bufferevent_write(bev, data + pos, n);
		pos += n;
		run_loop();
		drain(reader, got);
	}
}

static void deflate_text(const uint8_t *text, size_t len, const uint8_t *steps,
			 size_t nsteps, struct buf *out)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	size_t pos = 0, k = 0;
	uint8_t chunk[4096];
	do {
		size_t step = nsteps ? (size_t)steps[k++ % nsteps] * 8 + 1 : len;
		size_t n = len - pos < step ? len - pos : step;
		zs.next_in = (Bytef *)(text + pos);
		zs.avail_in = (uInt)n;
		pos += n;
		do {
			zs.next_out = chunk;
			zs.avail_out = sizeof(chunk);
			deflate(&zs, Z_SYNC_FLUSH);
			buf_append(out, chunk, sizeof(chunk) - zs.avail_out);
		} while (zs.avail_out == 0);
	} while (pos < len);
	deflateEnd(&zs);
}

static int inflate_all(const char *data, size_t len, struct buf *out)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, -15) != Z_OK)
		abort();
	uint8_t chunk[4096];
	zs.next_in = (Bytef *)data;
	zs.avail_in = (uInt)len;
	int r;
	do {
		zs.next_out = chunk;
		zs.avail_out = sizeof(chunk);
		r = inflate(&zs, Z_SYNC_FLUSH);
		buf_append(out, chunk, sizeof(chunk) - zs.avail_out);
	} while (r == Z_OK && (zs.avail_in > 0 || zs.avail_out == 0));
	inflateEnd(&zs);
	return r == Z_OK || r == Z_BUF_ERROR || r == Z_STREAM_END ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bufferevent *pair[2];

	if (base == NULL)
		base = event_base_new();
	if (size < 2 || size > 16384)
		return 0;
	int mode = data[0] % 3;
	size_t nsteps = data[1] % 8;
	if (size < 2 + nsteps)
		return 0;
	const uint8_t *steps = data + 2, *text = data + 2 + nsteps;
	size_t len = size - 2 - nsteps;

	if (bufferevent_pair_new(base, 0, pair) < 0)
		abort();
	struct net_zlib *z;
	struct bufferevent *f = net_zlib_wrap(pair[1], BEV_OPT_CLOSE_ON_FREE, &z);
	if (f == NULL)
		abort();
	bufferevent_enable(pair[0], EV_READ | EV_WRITE);
	bufferevent_enable(f, EV_READ | EV_WRITE);

	struct buf got, wire;
	buf_init(&got, 0);
	buf_init(&wire, 0);
	if (mode == 0) {
		pump(pair[0], f, text, len, steps, nsteps, &got);
	} else if (mode == 1) {
		deflate_text(text, len, steps, nsteps, &wire);
		pump(pair[0], f, (const uint8_t *)wire.data, wire.len, steps,
		     nsteps, &got);
		if (got.len != len || (len > 0 && memcmp(got.data, text, len) != 0))
			abort();
	} else {
		pump(f, pair[0], text, len, steps, nsteps, &wire);
		net_zlib_flush(f);
		run_loop();
		drain(pair[0], &wire);
		if (inflate_all(wire.data, wire.len, &got) < 0 || got.len != len ||
		    (len > 0 && memcmp(got.data, text, len) != 0))
			abort();
	}
	buf_free(&got);
	buf_free(&wire);
	net_zlib_detach(z);
	bufferevent_free(f);
	bufferevent_free(pair[0]);
	run_loop();
	return 0;
}
