/*
 * The part map: a compact serialization of the part tree that the store
 * caches beside the message, so FETCH BODY[1.2] / BINARY[...] find their
 * bytes without parsing again, and section resolution over it (RFC 3501
 * 6.4.5 / RFC 9051 6.4.5 numbering: the parts of a message/rfc822 part are
 * those of the message it holds).
 *
 * Format: "LP" 0x01, varint part count, then per part in pre-order:
 * varint flags, child count, header offset, header size, body size, body
 * lines, bare LFs in the body; then four short strings (varint length +
 * bytes): type, subtype, transfer encoding, charset, all lowercased.
 */
#include "mail-private.h"

#include <string.h>
#include <strings.h>

#define PARTS_MAGIC0 'L'
#define PARTS_MAGIC1 'P'
#define PARTS_VERSION 1

static void put_varint(struct buf *out, uint64_t v)
{
	char tmp[10];
	size_t n = 0;
	do {
		unsigned char b = v & 0x7F;
		v >>= 7;
		tmp[n++] = (char)(b | (v ? 0x80 : 0));
	} while (v);
	mail_buf_put(out, tmp, n);
}

static void put_lstr(struct buf *out, const char *s, size_t len)
{
	if (len > 255)
		len = 255;
	put_varint(out, len);
	for (size_t i = 0; i < len; i++)
		mail_buf_putc(out, mail_lower(s[i]));
}

void mail_parts_serialize(struct buf *out, const struct mparse *mp)
{
	mail_buf_putc(out, PARTS_MAGIC0);
	mail_buf_putc(out, PARTS_MAGIC1);
	mail_buf_putc(out, PARTS_VERSION);
	put_varint(out, mp->count);
	for (uint32_t i = 0; i < mp->count; i++) {
		const struct mpart *p = &mp->parts[i];
		put_varint(out, p->flags);
		put_varint(out, p->child_count);
		put_varint(out, p->hdr_off);
		put_varint(out, p->hdr_size);
		put_varint(out, p->body_end - p->body_off);
		put_varint(out, p->body_lines);
		put_varint(out, p->body_bare_lf);
		struct slice type = {"", 0}, sub = {"", 0};
		if (!mpart_content_type(mp, p, &type, &sub)) {
			if (p->flags & MP_MESSAGE) {
				type = slice_make("message", 7);
				sub = slice_make("rfc822", 6);
			} else {
				type = slice_make("text", 4);
				sub = slice_make("plain", 5);
			}
		}
		put_lstr(out, type.ptr, type.len);
		put_lstr(out, sub.ptr, sub.len);
		struct slice cte = mpart_binary_cte(p);
		put_lstr(out, cte.ptr, cte.len);
		const char *cs = "";
		struct mail_params params = {0};
		if (p->ctype.ptr != NULL && (p->flags & MP_IS_MIME)) {
			mail_params_parse(p->ctype.ptr, p->ctype.len, &params);
			cs = mail_params_get(&params, "charset");
			if (cs == NULL)
				cs = "";
		}
		put_lstr(out, cs, strlen(cs));
		mail_params_free(&params);
	}
}

/* ---- reading ------------------------------------------------------- */

struct preader {
	const unsigned char *p, *end;
	bool bad;
};

static uint64_t get_varint(struct preader *r)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end) {
			r->bad = true;
			return 0;
		}
		unsigned char b = *r->p++;
		v |= (uint64_t)(b & 0x7F) << shift;
		if (!(b & 0x80))
			return v;
	}
	r->bad = true;
	return 0;
}

static struct slice get_lstr(struct preader *r)
{
	uint64_t n = get_varint(r);
	if (r->bad || n > (uint64_t)(r->end - r->p)) {
		r->bad = true;
		return slice_make("", 0);
	}
	struct slice s = slice_make((const char *)r->p, (size_t)n);
	r->p += n;
	return s;
}

/* Reads the part at r into info; false if the map is corrupt. */
static bool read_part(struct preader *r, struct mail_part_info *info,
		      unsigned *flags_r)
{
	*flags_r = (unsigned)get_varint(r);
	info->child_count = (uint32_t)get_varint(r);
	info->header_offset = get_varint(r);
	info->header_size = get_varint(r);
	info->body_size = get_varint(r);
	info->body_lines = get_varint(r);
	(void)get_varint(r);
	info->type = get_lstr(r);
	info->subtype = get_lstr(r);
	info->encoding = get_lstr(r);
	info->charset = get_lstr(r);
	info->body_offset = info->header_offset + info->header_size;
	info->is_message = (*flags_r & MP_MESSAGE) != 0;
	return !r->bad;
}

/* Skips the subtree of a part whose own record was read. */
static bool skip_subtree(struct preader *r, uint32_t children)
{
	for (uint32_t i = 0; i < children; i++) {
		struct mail_part_info info;
		unsigned flags;
		if (!read_part(r, &info, &flags) || !skip_subtree(r, info.child_count))
			return false;
	}
	return true;
}

static bool parts_open(struct preader *r, const void *parts, size_t len)
{
	r->p = parts;
	r->end = r->p + len;
	r->bad = false;
	if (len < 4 || r->p[0] != PARTS_MAGIC0 || r->p[1] != PARTS_MAGIC1 ||
	    r->p[2] != PARTS_VERSION)
		return false;
	r->p += 3;
	(void)get_varint(r);
	return !r->bad;
}

/* The part map of the same message with delta bytes of header lines
 * put in front (a copy's trace fields before a shared body): the root's
 * header grows, every other part moves. */
bool mail_parts_shift(const void *parts, size_t len, uint64_t delta,
		      struct buf *out)
{
	struct preader r;
	if (!parts_open(&r, parts, len))
		return false;
	const unsigned char *p0 = parts;
	mail_buf_put(out, p0, 3);
	struct preader c = {p0 + 3, p0 + len, false};
	uint64_t count = get_varint(&c);
	put_varint(out, count);
	for (uint64_t i = 0; i < count && !c.bad; i++) {
		uint64_t v[7];
		for (int k = 0; k < 7; k++)
			v[k] = get_varint(&c);
		if (i == 0)
			v[3] += delta;  /* header size */
		else
			v[2] += delta;  /* header offset */
		for (int k = 0; k < 7; k++)
			put_varint(out, v[k]);
		for (int k = 0; k < 4; k++) {
			struct slice st = get_lstr(&c);
			put_varint(out, st.len);
			mail_buf_put(out, st.ptr, st.len);
		}
	}
	return !c.bad && c.p == c.end;
}

/* Finds the part at path. Returns 1 found, 0 no such part, -1 corrupt.
 * *msg_r tells whether the found part was entered as the message of a
 * message/rfc822 part (for HEADER/TEXT). */
static int find_part_at(struct preader *rp, const void *parts,
			size_t parts_len, const uint32_t *path,
			unsigned path_len, struct mail_part_info *info_r,
			unsigned *flags_r)
{
	struct preader r;
	if (!parts_open(&r, parts, parts_len))
		return -1;
	if (!read_part(&r, info_r, flags_r))
		return -1;
	/* Part numbering as Dovecot reads RFC 9051 6.4.5: the root's part 1
	 * is itself unless it is a multipart; the parts of a message/rfc822
	 * part are those of the message it holds (its parts if multipart,
	 * else the message itself as part 1); a leaf chosen from a
	 * multipart answers once more to ".1" as itself. */
	bool self_ok = false;
	for (unsigned d = 0; d < path_len; d++) {
		uint32_t n = path[d];
		if (n == 0)
			return 0;
		bool pick_child;
		if (d > 0 && (*flags_r & MP_MESSAGE) && info_r->child_count == 1) {
			if (!read_part(&r, info_r, flags_r))
				return -1;
			pick_child = (*flags_r & MP_MULTIPART) != 0;
			if (!pick_child && n != 1)
				return 0;
			self_ok = false;
		} else if (*flags_r & MP_MULTIPART) {
			pick_child = true;
		} else if (n == 1 && (d == 0 || self_ok)) {
			pick_child = false;
			self_ok = false;
		} else {
			return 0;
		}
		if (!pick_child)
			continue;
		if (n > info_r->child_count)
			return 0;
		if (!read_part(&r, info_r, flags_r))
			return -1;
		for (uint32_t k = 1; k < n; k++) {
			if (!skip_subtree(&r, info_r->child_count) ||
			    !read_part(&r, info_r, flags_r))
				return -1;
		}
		self_ok = true;
	}
	*rp = r;
	return 1;
}

static int find_part(const void *parts, size_t parts_len, const uint32_t *path,
		     unsigned path_len, struct mail_part_info *info_r,
		     unsigned *flags_r)
{
	struct preader r;
	return find_part_at(&r, parts, parts_len, path, path_len, info_r,
			    flags_r);
}

bool mail_part_lookup(const void *parts, size_t parts_len,
		      const uint32_t *path, unsigned path_len,
		      struct mail_part_info *info_r)
{
	unsigned flags;
	return find_part(parts, parts_len, path, path_len, info_r, &flags) == 1;
}

/* The message a part holds: itself for the root, its child for a
 * message/rfc822 part. Returns 1, 0 (not a message part), -1 corrupt. */
static int message_of(const void *parts, size_t parts_len, const uint32_t *path,
		      unsigned path_len, struct mail_part_info *msg_r)
{
	struct preader r;
	unsigned flags;
	int ret = find_part_at(&r, parts, parts_len, path, path_len, msg_r,
			       &flags);
	if (ret <= 0 || path_len == 0)
		return ret;
	if (!(flags & MP_MESSAGE) || msg_r->child_count != 1)
		return 0;
	/* pre-order: the held message's record comes next */
	return read_part(&r, msg_r, &flags) ? 1 : -1;
}

/* ---- sections ------------------------------------------------------ */

static bool in_bounds(size_t len, uint64_t off, uint64_t size)
{
	return off <= len && size <= len - off;
}

static bool field_listed(const struct mail_section_spec *spec, struct slice name)
{
	for (size_t i = 0; i < spec->field_count; i++) {
		if (spec->fields[i].len == name.len &&
		    strncasecmp(spec->fields[i].ptr, name.ptr, name.len) == 0)
			return true;
	}
	return false;
}

/* HEADER.FIELDS (.NOT): the matching fields as they are, then the blank
 * line (RFC 3501 6.4.5). */
/* HEADER.FIELDS (.NOT): the matching fields as they are, then the
 * header's own blank line (RFC 3501 6.4.5). A line without a colon is a
 * field named by the whole line, as Dovecot has it. */
static void header_fields(struct mail_section *sec, const char *hdr,
			  size_t len, const struct mail_section_spec *spec)
{
	bool not = spec->kind == MAIL_SECTION_HEADER_FIELDS_NOT;
	bool eoh = false;
	const char *p = hdr, *end = hdr + len;
	while (p < end) {
		if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) {
			mail_buf_put(&sec->owned, p, (size_t)(end - p));
			eoh = true;
			break;
		}
		const char *e = memchr(p, '\n', (size_t)(end - p));
		e = e ? e + 1 : end;
		while (e < end && (*e == ' ' || *e == '\t')) {
			const char *e2 = memchr(e, '\n', (size_t)(end - e));
			e = e2 ? e2 + 1 : end;
		}
		/* a line without a colon has no name to match */
		const char *colon = memchr(p, ':', (size_t)(e - p));
		const char *ne = colon != NULL ? colon : p;
		while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
			ne--;
		bool listed = colon != NULL &&
			      field_listed(spec, slice_make(p, (size_t)(ne - p)));
		/* a folded line can only start the header here: Dovecot
		 * makes a field of it */
		if (listed != not)
			mail_buf_put(&sec->owned, p, (size_t)(e - p));
		p = e;
	}
	/* A header with no blank line (the message is all header): Dovecot
	 * ends HEADER.FIELDS with one anyway, HEADER.FIELDS.NOT not. */
	if (!eoh && !not)
		mail_buf_puts(&sec->owned, "\r\n");
	sec->ptr = sec->owned.data ? sec->owned.data : "";
	sec->len = sec->owned.len;
}

int mail_section_get(const char *data, size_t len, const void *parts,
		     size_t parts_len, const struct mail_section_spec *spec,
		     struct mail_section *sec)
{
	memset(sec, 0, sizeof(*sec));
	buf_init(&sec->owned, 0);
	sec->ptr = "";
	struct mail_part_info info;
	int ret;
	switch (spec->kind) {
	case MAIL_SECTION_ALL:
		if (spec->path_len == 0) {
			sec->ptr = data;
			sec->len = len;
			return 0;
		}
		ret = mail_part_lookup(parts, parts_len, spec->path, spec->path_len,
				       &info) ? 1 : 0;
		if (ret == 0) {
			struct preader r;
			return parts_open(&r, parts, parts_len) ? 0 : -1;
		}
		if (!in_bounds(len, info.body_offset, info.body_size))
			return -1;
		sec->ptr = data + info.body_offset;
		sec->len = (size_t)info.body_size;
		return 0;
	case MAIL_SECTION_MIME:
		if (spec->path_len == 0)
			return 0;
		if (!mail_part_lookup(parts, parts_len, spec->path, spec->path_len,
				      &info)) {
			struct preader r;
			return parts_open(&r, parts, parts_len) ? 0 : -1;
		}
		if (!in_bounds(len, info.header_offset, info.header_size))
			return -1;
		sec->ptr = data + info.header_offset;
		sec->len = (size_t)info.header_size;
		return 0;
	default:
		break;
	}
	ret = message_of(parts, parts_len, spec->path, spec->path_len, &info);
	if (ret < 0)
		return -1;
	if (ret == 0)
		return 0;
	/* a header section needs only the header's bytes (a reader may
	 * have read no more: store_blob_open_head) */
	if (!in_bounds(len, info.header_offset, info.header_size) ||
	    (spec->kind == MAIL_SECTION_TEXT &&
	     !in_bounds(len, info.body_offset, info.body_size)))
		return -1;
	switch (spec->kind) {
	case MAIL_SECTION_HEADER:
		sec->ptr = data + info.header_offset;
		sec->len = (size_t)info.header_size;
		break;
	case MAIL_SECTION_TEXT:
		sec->ptr = data + info.body_offset;
		sec->len = (size_t)info.body_size;
		break;
	case MAIL_SECTION_HEADER_FIELDS:
	case MAIL_SECTION_HEADER_FIELDS_NOT:
		header_fields(sec, data + info.header_offset,
			      (size_t)info.header_size, spec);
		break;
	default:
		break;
	}
	return 0;
}

void mail_section_free(struct mail_section *sec)
{
	buf_free(&sec->owned);
	sec->ptr = NULL;
	sec->len = 0;
}

void mail_section_partial(struct mail_section *sec, uint64_t origin,
			  uint64_t octets)
{
	if (origin >= sec->len) {
		sec->ptr += sec->len;
		sec->len = 0;
		return;
	}
	sec->ptr += origin;
	sec->len -= (size_t)origin;
	if (octets < sec->len)
		sec->len = (size_t)octets;
}

/* ---- BINARY (RFC 3516) --------------------------------------------- */

enum cte { CTE_IDENTITY, CTE_BASE64, CTE_QP, CTE_UNKNOWN };

static enum cte cte_of(struct slice enc)
{
	if (enc.len == 0 || mail_slice_eq_ci(enc, "7bit") ||
	    mail_slice_eq_ci(enc, "8bit") || mail_slice_eq_ci(enc, "binary"))
		return CTE_IDENTITY;
	if (mail_slice_eq_ci(enc, "base64"))
		return CTE_BASE64;
	if (mail_slice_eq_ci(enc, "quoted-printable"))
		return CTE_QP;
	return CTE_UNKNOWN;
}

static int binary_part(const char *data, size_t len, const void *parts,
		       size_t parts_len, const uint32_t *path, unsigned path_len,
		       struct mail_part_info *info, enum cte *cte_r,
		       bool *unknown_cte_r)
{
	*unknown_cte_r = false;
	unsigned flags;
	int ret = find_part(parts, parts_len, path, path_len, info, &flags);
	if (ret < 0)
		return -1;
	if (ret == 0)
		return 0;
	if (!in_bounds(len, info->body_offset, info->body_size))
		return -1;
	*cte_r = cte_of(info->encoding);
	if (*cte_r == CTE_UNKNOWN) {
		*unknown_cte_r = true;
		return -1;
	}
	/* a multipart or message/rfc822 has nothing to decode (RFC 2045
	 * 6.4 allows them no encoding): sent as it is */
	if (flags & (MP_MULTIPART | MP_MESSAGE))
		*cte_r = CTE_IDENTITY;
	return 1;
}

int mail_binary_get(const char *data, size_t len, const void *parts,
		    size_t parts_len, const uint32_t *path, unsigned path_len,
		    struct mail_section *sec, bool *unknown_cte_r)
{
	memset(sec, 0, sizeof(*sec));
	buf_init(&sec->owned, 0);
	sec->ptr = "";
	*unknown_cte_r = false;
	if (path_len == 0) {
		sec->ptr = data;
		sec->len = len;
		return 0;
	}
	struct mail_part_info info;
	enum cte cte;
	int ret = binary_part(data, len, parts, parts_len, path, path_len, &info,
			      &cte, unknown_cte_r);
	if (ret <= 0)
		return ret;
	const char *body = data + info.body_offset;
	size_t blen = (size_t)info.body_size;
	if (cte == CTE_IDENTITY) {
		sec->ptr = body;
		sec->len = blen;
		return 0;
	}
	if (cte == CTE_BASE64) {
		struct mail_b64 st = {0};
		mail_b64_decode(&st, &sec->owned, body, blen);
	} else {
		mail_qp_decode(&sec->owned, body, blen, false);
	}
	sec->ptr = sec->owned.data ? sec->owned.data : "";
	sec->len = sec->owned.len;
	return 0;
}

int mail_binary_size(const char *data, size_t len, const void *parts,
		     size_t parts_len, const uint32_t *path, unsigned path_len,
		     uint64_t *size_r, bool *unknown_cte_r)
{
	*size_r = 0;
	*unknown_cte_r = false;
	if (path_len == 0) {
		*size_r = len;
		return 0;
	}
	struct mail_part_info info;
	enum cte cte;
	int ret = binary_part(data, len, parts, parts_len, path, path_len, &info,
			      &cte, unknown_cte_r);
	if (ret <= 0)
		return ret;
	const char *body = data + info.body_offset;
	size_t blen = (size_t)info.body_size;
	if (cte == CTE_IDENTITY)
		*size_r = blen;
	else if (cte == CTE_BASE64)
		*size_r = mail_b64_decoded_size(body, blen);
	else
		*size_r = mail_qp_decoded_size(body, blen);
	return 0;
}
