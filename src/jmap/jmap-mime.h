/*
 * A message as JMAP shows it (jmap-mime.c): header field forms, the tree
 * of EmailBodyParts, textBody/htmlBody/attachments, bodyValues.
 */
#ifndef LOFT_JMAP_MIME_H
#define LOFT_JMAP_MIME_H

#include "jmap-private.h"
#include "mail.h"

enum jmime_form {
	JMIME_RAW,
	JMIME_TEXT,
	JMIME_ADDRESSES,
	JMIME_GROUPED,
	JMIME_MESSAGE_IDS,
	JMIME_DATE,
	JMIME_URLS,
};

/* One part; parts[0] is the message. path: IMAP numbering within the
 * parsed bytes (a single-part message's body is part 1). */
struct jpart {
	int parent, first_child, next;
	const char *header;
	size_t header_len;
	size_t body_len;           /* encoded */
	uint64_t size;             /* decoded (JMAP "size") */
	char type[128];            /* "text/plain", lowercase */
	bool multipart;
	char *disposition, *name, *charset, *cid, *location, *language;
	uint32_t path[MAIL_SECTION_MAX_PATH];
	unsigned path_len;
};

struct jmime {
	const char *data;
	size_t len;
	struct mail_result an;
	struct jpart *parts;
	size_t count, cap;
};

int jmime_parse(struct jmime *m, const char *data, size_t len);
void jmime_free(struct jmime *m);

/* A JSON string from bytes meant as UTF-8 (others as Windows-1252). */
json_t *jmime_string(const char *s, size_t len);
/* One field value in a form (RFC 8621 4.1.2). */
json_t *jmime_form(struct slice name, struct slice value,
		   enum jmime_form form);
/* The last field called name (or all of them, an array) in a header
 * block, in a form; null when there is none. */
json_t *jmime_header(const char *hdr, size_t hlen, const char *name,
		     enum jmime_form form, bool all);
/* Every field: [{name, value}] with raw values. */
json_t *jmime_headers(const char *hdr, size_t hlen);
bool jmime_form_parse(const char *s, enum jmime_form *form_r);
/* "header:Name[:asForm][:all]": the name (as given) and form; false if
 * it is not such a property or the form does not fit the field. */
bool jmime_header_prop(const char *prop, char *name, size_t name_size,
		       enum jmime_form *form_r, bool *all_r);

/* An EmailBodyPart with the properties asked for. Blob ids are
 * blob_base + "-" + the IMAP path (prefix first) joined with "_". */
json_t *jmime_part_json(const struct jmime *m, int idx, json_t *props,
			const char *blob_base, const uint32_t *prefix,
			unsigned prefix_len);
void jmime_part_id(const struct jpart *p, char out[256]);
/* RFC 8621 4.1.4 over the whole message; arrays of part indexes
 * (caller frees). */
void jmime_body_lists(const struct jmime *m, int **text, size_t *ntext,
		      int **html, size_t *nhtml, int **att, size_t *natt);
/* An EmailBodyValue: decoded, in UTF-8, cut at max_bytes (0: whole). */
json_t *jmime_body_value(const struct jmime *m, int idx, uint64_t max_bytes);

#endif
