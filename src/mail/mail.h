/*
 * Message parsing: RFC 5322 + MIME (RFC 2045-2049) for the store and the
 * front-ends. Pure functions over bytes in memory; no I/O, no globals, safe
 * to call from any thread.
 *
 * The store calls mail_analyze() once when a message is written and caches
 * what it returns (struct store_msg fields of the same names). Front-ends
 * use the cached part map with mail_section_*() to serve BODY[...] /
 * BINARY[...] without parsing the message again, and the header helpers for
 * SEARCH / SORT / THREAD.
 *
 * Offsets in a part map refer to the exact bytes given to mail_analyze():
 * the store analyses the bytes it stores (the CRLF blob), so RFC822.SIZE,
 * part sizes and ranges agree with what is served. LF-only input is parsed
 * too (each bare LF counts as a line end), but offsets then describe that
 * input, not its CRLF form.
 *
 * Malformed mail never fails: a missing boundary, a bad header line or a
 * part nested too deep yields the structure a reader would see (the rest
 * is text), as Dovecot does. Only allocation failure aborts.
 */
#ifndef LOFT_MAIL_H
#define LOFT_MAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

/* ---- limits ------------------------------------------------------- */

/* Beyond these a part is not split further: its body is opaque text (a
 * multipart past a limit is reported with no parts, a message/rfc822 as a
 * leaf), so a hostile message costs bounded memory and stack. */
struct mail_limits {
	unsigned max_depth;        /* nesting of multipart/message; default 100 */
	unsigned max_parts;        /* parts per message; default 10000 */
	size_t max_header_fields;  /* fields parsed per header; default 10000 */
	size_t max_search_text;    /* bytes of body search text kept in the
	                              result when no callback is given;
	                              default 16 MiB (0 = default) */
};
/* Fills *limits with the defaults. A NULL limits pointer means these. */
void mail_limits_default(struct mail_limits *limits);

/* ---- mail_analyze ------------------------------------------------- */

/* Search text is delivered in pieces, already decoded to UTF-8 (transfer
 * encoding undone, charset converted, HTML reduced to text, CRLF made LF,
 * NUL and other C0 controls except TAB/LF replaced by spaces). kind says where it comes
 * from; for MAIL_TEXT_HEADER, name is the field name (e.g. "Subject") and
 * the piece is one whole decoded field value; for MAIL_TEXT_BODY name is
 * NULL and pieces of one part follow each other (a piece may end inside a
 * word; a part ends with a "\n" piece). Headers of attached
 * message/rfc822 parts count as body text (they are text the user sees). */
enum mail_text_kind { MAIL_TEXT_HEADER, MAIL_TEXT_BODY };
typedef void mail_text_fn(void *ctx, enum mail_text_kind kind,
			  const char *name, const char *text, size_t len);

struct mail_analyze_options {
	const struct mail_limits *limits;  /* NULL: defaults */
	/* NULL: the text is gathered in result->header_text / body_text
	 * (body text capped at limits->max_search_text). Given: nothing is
	 * gathered and memory stays bounded by structure, not size. */
	mail_text_fn *text_cb;
	void *text_ctx;
	/* false: skip the search text entirely (cheaper). */
	bool want_text;
};

struct mail_result {
	/* IMAP forms, NUL-terminated, parenthesised, ready to send after
	 * "ENVELOPE " / "BODYSTRUCTURE " / "BODY ". Strings inside that
	 * cannot be quoted are {n}\r\n literals. */
	char *envelope;
	char *bodystructure;   /* with extension data (RFC 3501 7.4.2) */
	char *body;            /* without extension data */
	/* Serialized part map for mail_section_*(); opaque bytes that the
	 * store keeps as a blob. */
	void *parts;
	size_t parts_len;
	/* Up to 200 characters (not bytes) of UTF-8 from the first text part
	 * (text/plain preferred, else HTML reduced to text), whitespace
	 * collapsed; "" when there is no text (RFC 8970 PREVIEW). */
	char *preview;
	/* Sort and thread fields (RFC 5256, RFC 5957). All UTF-8, never
	 * NULL (empty string when absent). sort_from/to/cc: the mailbox
	 * (local part) of the first address, as RFC 5256 SORT FROM says;
	 * display_*: the decoded display name of the first address or, if
	 * none, its addr-spec (RFC 5957 2). */
	char *sort_subject;    /* base subject (RFC 5256 2.1), case kept */
	char *sort_from;
	char *sort_to;
	char *sort_cc;
	char *sort_display_from;
	char *sort_display_to;
	/* Date: header as UTC time_t; 0 when missing or unparsable (the
	 * store then uses the internal date, RFC 5256 SORT DATE). */
	time_t sent_date;
	/* Threading: Message-ID and In-Reply-To as one "<id>" each (first
	 * valid msg-id, "" if none); References as the list of "<id>"
	 * separated by single spaces. */
	char *message_id;
	char *in_reply_to;
	char *references;
	/* Search text, when options->want_text and no text_cb: header fields
	 * as "Name: decoded value\n" lines; body text of every text part. */
	char *header_text;
	size_t header_text_len;
	char *body_text;
	size_t body_text_len;
	/* Facts the store may want. */
	uint64_t size;          /* len as given */
	uint32_t part_count;    /* MIME parts, the message itself included */
	bool has_nul;           /* the message holds NUL bytes */
	bool has_attachment;    /* a part with disposition attachment, or a
	                           non-text leaf with a filename */
};

/* Analyses a whole message in one pass. data need not be NUL-terminated
 * and may hold NULs. options may be NULL (defaults, text gathered).
 * Returns 0 (always, for any input); free the result with
 * mail_result_free(). */
int mail_analyze(const char *data, size_t len,
		 const struct mail_analyze_options *options,
		 struct mail_result *result_r);
void mail_result_free(struct mail_result *result);

/* ---- sections (FETCH BODY[...] / BINARY[...]) --------------------- */

enum mail_section_kind {
	MAIL_SECTION_ALL,            /* BODY[] or BODY[1.2] (a part's body) */
	MAIL_SECTION_HEADER,         /* HEADER */
	MAIL_SECTION_HEADER_FIELDS,  /* HEADER.FIELDS (list) */
	MAIL_SECTION_HEADER_FIELDS_NOT,
	MAIL_SECTION_TEXT,           /* TEXT */
	MAIL_SECTION_MIME,           /* MIME (only after a part number) */
};

#define MAIL_SECTION_MAX_PATH 64

struct mail_section_spec {
	uint32_t path[MAIL_SECTION_MAX_PATH];  /* 1-based part numbers */
	unsigned path_len;                      /* 0: the whole message */
	enum mail_section_kind kind;
	/* HEADER.FIELDS (.NOT): field names (slices into the parsed text,
	 * or set by the caller) */
	struct slice *fields;
	size_t field_count;
};

/* Parses the text between "[" and "]" (e.g. "1.2.HEADER.FIELDS (From
 * To)"; field names may be atoms or quoted strings; IMAP literals are for
 * the caller's parser). spec->fields is allocated (free with
 * mail_section_spec_free) and points into text. Returns 0, or -1 if the
 * text is not a valid section (RFC 9051 6.4.5 grammar; part numbers are
 * non-zero; MIME needs a part number). */
int mail_section_parse(const char *text, size_t len,
		       struct mail_section_spec *spec_r);
void mail_section_spec_free(struct mail_section_spec *spec);

/* The bytes of a section. For every kind but HEADER.FIELDS(.NOT) they are
 * a range of the message (ptr points into data, nothing is copied); for
 * HEADER.FIELDS they are assembled in owned (ptr points there). */
struct mail_section {
	const char *ptr;
	size_t len;
	struct buf owned;
};

/* Resolves spec against the message data/len and its part map (as made
 * by mail_analyze() of the same bytes). A section that does not exist
 * (part 3 of a two-part message, HEADER of a non-message part, ...) is
 * empty, as Dovecot answers ("" not an error). Part numbers follow
 * Dovecot's reading of RFC 9051 6.4.5: part 1 of a non-multipart message
 * is its body; the parts of a message/rfc822 part are those of the
 * message it holds; a leaf part answers once more to ".1".
 * Returns 0, or -1 when the part map is corrupt or does not match data
 * (the caller logs it and may re-analyse). Free with
 * mail_section_free(). */
int mail_section_get(const char *data, size_t len, const void *parts,
		     size_t parts_len, const struct mail_section_spec *spec,
		     struct mail_section *section_r);
void mail_section_free(struct mail_section *section);

/* BINARY[path] (RFC 3516): the part's body with its content transfer
 * encoding undone (base64, quoted-printable; 7bit/8bit/binary as is),
 * by the part's last Content-Transfer-Encoding field as Dovecot does. A
 * multipart or message/rfc822 part is sent as it is (RFC 2045 6.4 gives
 * it no encoding; see docs/compat.md). An empty path means the whole
 * message (never decoded).
 * Returns 0; -1 with *unknown_cte_r true for an encoding Loft does not
 * know (reply NO [UNKNOWN-CTE]), or with it false when the part map is
 * corrupt. A part that does not exist is empty, as for BODY. The result
 * may point into data (identity encodings) or into owned. */
int mail_binary_get(const char *data, size_t len, const void *parts,
		    size_t parts_len, const uint32_t *path, unsigned path_len,
		    struct mail_section *section_r, bool *unknown_cte_r);
/* BINARY.SIZE[path]: the decoded size, computed without building it. */
int mail_binary_size(const char *data, size_t len, const void *parts,
		     size_t parts_len, const uint32_t *path, unsigned path_len,
		     uint64_t *size_r, bool *unknown_cte_r);

/* Applies a FETCH partial <origin.octets> to a section (RFC 3501 6.4.5:
 * an origin past the end gives ""; octets are clipped to what is left). */
void mail_section_partial(struct mail_section *section, uint64_t origin,
			  uint64_t octets);

/* What the part map says about one part (for a front-end that needs the
 * Content-Type of a part, e.g. to decide on BINARY). Returns false if the
 * part does not exist. Slices point into parts. */
struct mail_part_info {
	uint64_t header_offset, header_size;  /* header incl. blank line */
	uint64_t body_offset, body_size;
	uint64_t body_lines;
	struct slice type, subtype;           /* lowercased */
	struct slice encoding;                /* lowercased, "" if none */
	struct slice charset;                 /* lowercased, "" if none */
	uint32_t child_count;
	bool is_message;                      /* message/rfc822 or global */
};
bool mail_part_lookup(const void *parts, size_t parts_len,
		      const uint32_t *path, unsigned path_len,
		      struct mail_part_info *info_r);

/* Appends to out the part map of the same message with delta bytes of
 * header lines put in front of it (the store's per-copy trace fields
 * before a shared body). false if parts is corrupt. */
bool mail_parts_shift(const void *parts, size_t parts_len, uint64_t delta,
		      struct buf *out);

/* ---- header helpers ----------------------------------------------- */

/* Walks the header fields of a header block (data up to the blank line,
 * or the whole slice). Each field's value is raw: folding included, the
 * final line end excluded, leading whitespace after the colon removed.
 * Returns 1 with a field, 0 at the end. Lines without a colon are
 * skipped. */
struct mail_header_iter {
	const char *p, *end;
};
void mail_header_iter_init(struct mail_header_iter *it, const char *hdr,
			   size_t len);
int mail_header_iter_next(struct mail_header_iter *it, struct slice *name_r,
			  struct slice *value_r);
/* The size of the header block at data, blank line included. */
size_t mail_header_size(const char *data, size_t len);

/* The raw value of the first field called name (case-insensitive) in hdr;
 * false if there is none. */
bool mail_header_find(const char *hdr, size_t len, const char *name,
		      struct slice *value_r);
/* Appends value unfolded (CR/LF removed, as RFC 5322 2.2.3 unfolding). */
void mail_header_unfold(struct buf *out, struct slice value);
/* Appends the decoded UTF-8 of an unstructured value: unfolded, RFC 2047
 * encoded words decoded, raw 8-bit taken as UTF-8 if valid, else as
 * Windows-1252. */
void mail_header_decode(struct buf *out, struct slice value);

/* RFC 2047 decoding of a whole text (whitespace between adjacent encoded
 * words dropped, 6.2). Invalid words stay as they are. */
void mail_decode_2047(struct buf *out, const char *s, size_t len);

/* Addresses (RFC 5322 3.4, obsolete forms 4.4, RFC 6532 UTF-8). A list is
 * flat, in IMAP's form: a group is a start marker (mailbox = group name,
 * host = NULL), its members, and an end marker (mailbox = NULL, host =
 * NULL). Strings are raw bytes of the header (unquoted, comments
 * dropped), except name_utf8 which is the decoded display name. NULL
 * means absent (IMAP NIL). An address with no domain gets host
 * "MISSING_DOMAIN" and one with no local part mailbox "MISSING_MAILBOX",
 * as Dovecot does. */
struct mail_address {
	char *name;        /* display name as in the header (encoded words
	                      kept, quotes removed), or NULL */
	char *name_utf8;   /* display name decoded (RFC 2047), or NULL */
	char *route;       /* obsolete source route "@a,@b", or NULL */
	char *mailbox;
	char *host;
	bool invalid;      /* could not be parsed cleanly */
};
/* Parses a header value (raw or unfolded). Returns the number of entries
 * in *list_r (caller frees with mail_address_list_free). */
size_t mail_address_parse(const char *s, size_t len,
			  struct mail_address **list_r);
void mail_address_list_free(struct mail_address *list, size_t count);

/* Content-Type / Content-Disposition style values: a token ("text/plain",
 * "attachment") then ;-separated parameters. RFC 2231 continuations
 * (name*0, name*1*) are joined and charset'lang'%xx values decoded to
 * UTF-8; RFC 2047 words in quoted values (a common violation) too. */
struct mail_param {
	char *name;        /* lowercased */
	char *value;       /* decoded UTF-8 */
};
struct mail_params {
	char *value;       /* the leading token, lowercased, or "" */
	struct mail_param *params;
	size_t count;
};
void mail_params_parse(const char *s, size_t len, struct mail_params *r);
/* The value of a parameter, or NULL. */
const char *mail_params_get(const struct mail_params *p, const char *name);
void mail_params_free(struct mail_params *p);

/* Appends s (in charset) converted to UTF-8, with iconv. An unknown
 * charset, or bytes that are not valid in it ("lying" charsets), fall
 * back: valid UTF-8 is kept, other bytes are taken as Windows-1252 /
 * ISO-8859-1. Never fails; returns false if a fallback was used. */
bool mail_charset_to_utf8(struct buf *out, const char *charset,
			  const char *s, size_t len);
/* Whether s is valid UTF-8. */
bool mail_utf8_valid(const char *s, size_t len);

/* RFC 5322 3.3 date-time, obsolete forms (4.3: two-digit years, any
 * zone name, comments, missing seconds or weekday) included. Returns
 * true and the UTC time and the zone offset in minutes. */
bool mail_date_parse(const char *s, size_t len, time_t *time_r,
		     int *tz_offset_r);

/* RFC 5256 2.1 base subject of an (already decoded, UTF-8) subject. */
void mail_base_subject(struct buf *out, const char *s, size_t len);

/* Appends s as an IMAP string: quoted if it has no CR, LF, NUL, 8-bit
 * byte (unless utf8 is true: RFC 6855 quoted UTF-8) and is not too long,
 * else a {n}\r\n literal. mail_imap_nstring appends NIL for NULL. */
void mail_imap_string(struct buf *out, const char *s, size_t len, bool utf8);
void mail_imap_nstring(struct buf *out, const char *s, size_t len,
		       bool utf8);

/* Case-insensitive substring search as IMAP SEARCH defines it for
 * UTF-8 text (RFC 9051 6.4.4: i;unicode-casemap style, ASCII and common
 * scripts folded); both texts UTF-8. */
bool mail_text_contains(const char *hay, size_t hay_len, const char *needle,
			size_t needle_len);
/* Appends s case-folded (for building a search index that gives the same
 * answers as mail_text_contains). */
void mail_text_fold(struct buf *out, const char *s, size_t len);

#endif
