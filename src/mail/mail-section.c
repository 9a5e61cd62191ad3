/*
 * Parsing a FETCH section text (RFC 9051 6.4.5 / RFC 3501 9 grammar):
 *   section-spec = section-msgtext / (section-part ["." section-text])
 *   section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list /
 *                     "TEXT"
 *   section-text = section-msgtext / "MIME"
 * Field names are atoms or quoted strings; literals are the IMAP parser's.
 */
#include "mail-private.h"

#include <string.h>
#include <strings.h>

static bool word_is(const char *p, const char *end, const char *w)
{
	size_t n = strlen(w);
	return (size_t)(end - p) >= n && strncasecmp(p, w, n) == 0;
}

static bool is_atom_char(char c)
{
	unsigned char u = (unsigned char)c;
	return u > 0x20 && u < 0x7F && strchr("(){%*\"\\]", c) == NULL;
}

static int parse_fields(const char *p, const char *end,
			struct mail_section_spec *spec)
{
	if (p >= end || *p != ' ')
		return -1;
	p++;
	if (p >= end || *p != '(')
		return -1;
	p++;
	size_t cap = 0;
	for (;;) {
		if (p >= end)
			return -1;
		if (*p == ')') {
			p++;
			break;
		}
		if (spec->field_count > 0) {
			if (*p != ' ')
				return -1;
			p++;
		}
		struct slice f;
		if (p < end && *p == '"') {
			const char *s = ++p;
			while (p < end && *p != '"') {
				if (*p == '\\')
					return -1;   /* no escapes in field names */
				p++;
			}
			if (p >= end)
				return -1;
			f = slice_make(s, (size_t)(p - s));
			p++;
		} else {
			const char *s = p;
			while (p < end && is_atom_char(*p))
				p++;
			if (p == s)
				return -1;
			f = slice_make(s, (size_t)(p - s));
		}
		if (spec->field_count == cap) {
			cap = cap ? cap * 2 : 8;
			spec->fields = xrealloc(spec->fields, cap * sizeof(*spec->fields));
		}
		spec->fields[spec->field_count++] = f;
	}
	if (spec->field_count == 0 || p != end)
		return -1;
	return 0;
}

int mail_section_parse(const char *text, size_t len,
		       struct mail_section_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	const char *p = text, *end = text + len;
	/* section-part = nz-number *("." nz-number) */
	while (p < end && *p >= '0' && *p <= '9') {
		if (*p == '0' || spec->path_len == MAIL_SECTION_MAX_PATH)
			goto fail;
		uint64_t v = 0;
		while (p < end && *p >= '0' && *p <= '9') {
			v = v * 10 + (uint64_t)(*p - '0');
			if (v > UINT32_MAX)
				goto fail;
			p++;
		}
		spec->path[spec->path_len++] = (uint32_t)v;
		if (p < end && *p == '.') {
			p++;
			if (p == end)
				goto fail;
			continue;
		}
		break;
	}
	if (p == end) {
		spec->kind = MAIL_SECTION_ALL;
		return 0;
	}
	if (spec->path_len > 0 && p[-1] != '.')
		goto fail;
	if (word_is(p, end, "HEADER.FIELDS.NOT")) {
		spec->kind = MAIL_SECTION_HEADER_FIELDS_NOT;
		if (parse_fields(p + 17, end, spec) < 0)
			goto fail;
	} else if (word_is(p, end, "HEADER.FIELDS")) {
		spec->kind = MAIL_SECTION_HEADER_FIELDS;
		if (parse_fields(p + 13, end, spec) < 0)
			goto fail;
	} else if (word_is(p, end, "HEADER") && end - p == 6) {
		spec->kind = MAIL_SECTION_HEADER;
	} else if (word_is(p, end, "TEXT") && end - p == 4) {
		spec->kind = MAIL_SECTION_TEXT;
	} else if (word_is(p, end, "MIME") && end - p == 4 && spec->path_len > 0) {
		spec->kind = MAIL_SECTION_MIME;
	} else {
		goto fail;
	}
	return 0;
fail:
	mail_section_spec_free(spec);
	return -1;
}

void mail_section_spec_free(struct mail_section_spec *spec)
{
	free(spec->fields);
	spec->fields = NULL;
	spec->field_count = 0;
}
