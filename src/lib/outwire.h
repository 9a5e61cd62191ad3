/*
 * The requests loftd's mail process sends its outbound process
 * (src/daemon/daemon-outbound.c says how they travel) and their parser.
 * The outbound process trusts the mail process no more than a client:
 * exact sizes, bounded fields, nothing read past the payload, one
 * canonical encoding (fuzz-lib-outwire re-encodes what it accepts).
 *
 *   request:  u32 type, u32 length, payload (length bytes); big-endian
 *   CONNECT (1): u16 family (AF_INET, AF_INET6), u16 port (network
 *     order, not 0), 16 bytes address (IPv4: 4, then zeros), u32 timeout
 *     in ms (1..300000): exactly 24 bytes
 *   SIGN (2): u32 body hash length (1..64), the hash, the header (1 to
 *     OUTWIRE_HEAD_MAX bytes, up to and including the empty line)
 *   HTTP (3): u32 timeout ms (1..300000), u32 connect timeout ms
 *     (1..timeout), u32 answer max (0..OUTHTTP_ANSWER_MAX), u8 flags (1:
 *     https only; no other bit), then strings (u32 length, bytes):
 *     method ("GET" or "POST"), URL (1..OUTHTTP_URL_MAX visible ASCII,
 *     "https://" or, without the flag, "http://" first), resolve pin (0
 *     or up to 600 visible ASCII), CA file (0, or up to 4096 bytes
 *     starting with '/', no NUL), u32 header count
 *     (0..OUTHTTP_HEADERS_MAX) and each header (1..OUTHTTP_HEADER_MAX
 *     bytes: a token of visible ASCII but ':', ':', then no control
 *     character but tab), then the body (u32 length, bytes; GET: none), and
 *     nothing after it
 *
 *   answer:   u32 status (0 ok, else an errno value), u32 length, text
 *     (the reason, or what the request returns; CONNECT's socket rides
 *     on the answer, SCM_RIGHTS)
 *   HTTP answer text: u32 HTTP status (100..599), u32 content type
 *     length (0..256 printable ASCII), the content type, the body (the
 *     rest; at most the request's answer max)
 */
#ifndef LOFT_OUTWIRE_H
#define LOFT_OUTWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "outhttp.h"

#define OUTWIRE_MAGIC "OUT1"
#define OUTWIRE_CONNECT 1
#define OUTWIRE_SIGN 2
#define OUTWIRE_HTTP 3
#define OUTWIRE_HASH_MAX 64
#define OUTWIRE_HEAD_MAX (1024 * 1024)
#define OUTWIRE_CTYPE_MAX 256
/* the longest answer text (an HTTP answer's) */
#define OUTWIRE_ANSWER_MAX (OUTHTTP_ANSWER_MAX + 8 + OUTWIRE_CTYPE_MAX)

/* Big-endian 32-bit fields, as every field above. */
static inline void outwire_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t outwire_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

struct outwire_request {
	uint32_t type;
	/* CONNECT */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	unsigned timeout_ms;
	/* SIGN: into the payload */
	const uint8_t *hash;
	size_t hash_len;
	const char *head;
	size_t head_len;
	/* HTTP: http's strings are copies, NUL-terminated (the body points
	 * into the payload) */
	struct outhttp_request http;
	char *method, *url, *resolve, *ca_file;
	char **headers;
};

/* The 8-byte header: 0 with the type and the payload's length when both
 * are acceptable (read the payload next), else -1. */
int outwire_header_parse(const uint8_t hdr[8], uint32_t *type_r,
			 uint32_t *len_r);
/* The payload of a request whose header passed: 0, or -1 with *why_r (a
 * static string). Free with outwire_request_deinit either way. */
int outwire_request_parse(uint32_t type, const uint8_t *p, size_t len,
			  struct outwire_request *r, const char **why_r);
void outwire_request_deinit(struct outwire_request *r);

/* Whole requests (header and payload) appended to out: 0, or -1 when
 * the request is outside the bounds above (nothing appended). */
int outwire_connect_encode(const struct sockaddr *sa, socklen_t len,
			   unsigned timeout_ms, struct buf *out);
int outwire_sign_encode(const uint8_t *hash, size_t hash_len,
			const char *head, size_t head_len, struct buf *out);
int outwire_http_encode(const struct outhttp_request *req, struct buf *out);

/* An HTTP answer's text. */
void outwire_http_answer_encode(const struct outhttp_answer *a,
				struct buf *out);
/* 0 with *a_r filled (free with outhttp_answer_free), or -1. */
int outwire_http_answer_parse(const uint8_t *p, size_t len,
			      size_t answer_max, struct outhttp_answer *a_r);

#endif
