/*
 * Internals of src/mail shared between its files: the parsed part tree
 * (what mail-parser.c builds in one pass and the writers of ENVELOPE,
 * BODYSTRUCTURE, part map and search text read), and small helpers.
 */
#ifndef LOFT_MAIL_PRIVATE_H
#define LOFT_MAIL_PRIVATE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail.h"

#define MAIL_NONE UINT32_MAX

enum mpart_flag {
	MP_MULTIPART = 1 << 0,
	MP_MESSAGE = 1 << 1,     /* message/rfc822 (or global): one child */
	MP_TEXT = 1 << 2,        /* text/ *, or no usable Content-Type */
	MP_IS_MIME = 1 << 3,     /* Content-* fields count (RFC 2045 4) */
	MP_DIGEST = 1 << 4,      /* multipart/digest: default message/rfc822 */
	MP_HAS_NUL = 1 << 5,
	MP_OPAQUE = 1 << 6,      /* past a limit: not split further */
	MP_CUT = 1 << 7,         /* header cut short by a boundary line */
};

/* One MIME part. Offsets are into the message; the part is
 * [hdr_off, body_end): header (blank line included) then body. */
struct mpart {
	uint32_t parent, first_child, last_child, next;
	uint32_t child_count, depth;
	unsigned flags;
	size_t hdr_off, hdr_size, body_off, body_end;
	uint64_t body_lines;     /* LFs in the body */
	uint64_t body_bare_lf;   /* LFs without CR: virtual size adds them */
	uint64_t hdr_lines, hdr_bare_lf;
	/* raw values (folding included) of the first Content-* fields */
	struct slice ctype, cte, cid, cdesc, cdisp, cmd5, clang, cloc;
	/* the last Content-Transfer-Encoding: what BINARY decodes by */
	struct slice cte_last;
	/* Dovecot takes a later Content-Disposition while the first had no
	 * parameters; remember that the first one had none. */
	bool cdisp_params_seen;
};

struct mparse {
	const char *data;
	size_t len;
	struct mail_limits limits;
	struct mpart *parts;
	uint32_t count, cap;
};

/* mail-parser.c: builds the tree; parts[0] is the message. */
void mail_parse_structure(struct mparse *mp, const char *data, size_t len,
			  const struct mail_limits *limits);
void mail_parse_free(struct mparse *mp);
/* type/subtype of a part as written (case kept), from its Content-Type;
 * false if it has none usable (or the part is not MIME). */
bool mpart_content_type(const struct mparse *mp, const struct mpart *p,
			struct slice *type_r, struct slice *subtype_r);
/* The same, as Dovecot reads a broken value (type or subtype may be
 * empty); valid_r says a "/" followed the type, so that parameters
 * may be read. */
bool mpart_ctype(const struct mpart *p, struct slice *type_r,
		 struct slice *subtype_r, bool *valid_r);
/* The Content-Transfer-Encoding token as written; false (and "") when
 * there is none or the value is not exactly one token. */
bool mpart_cte(const struct mpart *p, struct slice *cte_r);
/* The encoding BINARY undoes: from the last such field, MIME or not; a
 * value that is not one token is "x-invalid" (unknown). */
struct slice mpart_binary_cte(const struct mpart *p);

/* mail-params.c: the parameter list as Dovecot's BODYSTRUCTURE shows it
 * (names as written, RFC 2231 pieces joined, extended values encoded);
 * value_r gets the leading token(s) as written. */
void mail_params_raw(const char *s, size_t len, struct buf *value_r,
		     struct mail_param **list_r, size_t *count_r);

/* mail-imap.c: Dovecot's string forms */
void mail_imap_nstring_nolf(struct buf *out, const char *s, size_t len);
void mail_imap_string_for_humans(struct buf *out, const char *s, size_t len);

/* mail-envelope.c / mail-bodystructure.c */
void mail_write_envelope(struct buf *out, const char *hdr, size_t hdr_len);
void mail_write_bodystructure(struct buf *out, const struct mparse *mp,
			      uint32_t idx, bool extended);

/* mail-parts.c: serialized part map */
void mail_parts_serialize(struct buf *out, const struct mparse *mp);

/* mail-text.c: search text, preview */
struct mail_text_sink;
void mail_collect_text(const struct mparse *mp,
		       const struct mail_analyze_options *opt,
		       struct mail_result *r);

/* mail-decode.c: transfer encodings */
/* Streaming base64: state persists across calls; invalid chars skipped. */
struct mail_b64 {
	uint32_t acc;
	unsigned bits;
	bool done;   /* '=' padding seen */
};
void mail_b64_decode(struct mail_b64 *st, struct buf *out, const char *s,
		     size_t len);
/* Quoted-printable of a whole body (RFC 2045 6.7); soft line breaks,
 * =XX, and trailing whitespace on lines removed. Invalid "=" kept. */
void mail_qp_decode(struct buf *out, const char *s, size_t len, bool header);
uint64_t mail_b64_decoded_size(const char *s, size_t len);
uint64_t mail_qp_decoded_size(const char *s, size_t len);

/* mail-charset.c */
#include <iconv.h>
/* A cached converter to UTF-8 (thread-local; never close it), reset. */
iconv_t mail_iconv_get(const char *name);
/* iconv's name for a charset mail names, or NULL for "no real charset" */
const char *mail_charset_iconv_name(const char *cs);
void mail_utf8_put(struct buf *out, uint32_t cp);
size_t mail_utf8_seq_len(const unsigned char *s, size_t len);
void mail_utf8_repair(struct buf *out, const char *s, size_t len);
/* Makes out[start..] valid UTF-8 (U+FFFD for bad sequences). */
void mail_utf8_sanitize(struct buf *out, size_t start);
/* Raw header bytes: kept if valid UTF-8, else repaired. */
void mail_utf8_append_raw(struct buf *out, const char *s, size_t len);

/* Appends, aborting on failure (our buffers have no maximum, so only an
 * allocation failure or a size_t overflow can fail). */
static inline void mail_buf_put(struct buf *b, const void *p, size_t n)
{
	/* the fast path keeps buf's invariant: data is NUL-terminated */
	if (n == 0)
		return;
	if (n < b->cap && b->len < b->cap - n) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
		b->data[b->len] = '\0';
		return;
	}
	if (buf_append(b, p, n) < 0)
		abort();
}
static inline void mail_buf_putc(struct buf *b, char c)
{
	if (b->len + 1 < b->cap) {
		b->data[b->len++] = c;
		b->data[b->len] = '\0';
		return;
	}
	if (buf_append_char(b, c) < 0)
		abort();
}
static inline void mail_buf_puts(struct buf *b, const char *s)
{
	if (buf_append_str(b, s) < 0)
		abort();
}
static inline bool mail_is_lwsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
static inline char mail_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}
bool mail_slice_eq_ci(struct slice s, const char *lit);
/* Steals a buf's data as a NUL-terminated string ("" if empty). */
char *mail_buf_take(struct buf *b);

/* The value of a hex digit (either case), or -1: for quoted-printable,
 * RFC 2047 Q-encoding and RFC 2231 %XX. */
static inline int mail_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

#endif
