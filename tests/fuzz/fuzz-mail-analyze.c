/*
 * Fuzz target: mail_analyze() on any bytes, then every section of every
 * part it reports, with invariants a client relies on: HEADER + TEXT is
 * the whole message, sections stay inside the message, BINARY.SIZE equals
 * the length of BINARY.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail.h"

static void check_part(const char *data, size_t len,
		       const struct mail_result *r, uint32_t *path,
		       unsigned depth)
{
	static const char *const kinds[] = {"", "HEADER", "TEXT", "MIME",
					    "HEADER.FIELDS (From Subject)",
					    "HEADER.FIELDS.NOT (To)"};
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		struct mail_section_spec spec;
		struct mail_section sec;
		memset(&spec, 0, sizeof(spec));
		if (mail_section_parse(kinds[k], strlen(kinds[k]), &spec) < 0 &&
		    depth == 0)
			continue;
		memcpy(spec.path, path, depth * sizeof(*path));
		spec.path_len = depth;
		if (spec.kind == MAIL_SECTION_MIME && depth == 0) {
			mail_section_spec_free(&spec);
			continue;
		}
		if (mail_section_get(data, len, r->parts, r->parts_len, &spec,
				     &sec) < 0)
			abort();   /* our own map must always match */
		if (sec.owned.data == NULL && sec.len > 0 &&
		    (sec.ptr < data || sec.ptr + sec.len > data + len))
			abort();
		mail_section_partial(&sec, 3, 5);
		mail_section_free(&sec);
		mail_section_spec_free(&spec);
	}
	struct mail_section bin;
	bool unknown;
	uint64_t size;
	if (mail_binary_get(data, len, r->parts, r->parts_len, path, depth,
			    &bin, &unknown) == 0) {
		if (mail_binary_size(data, len, r->parts, r->parts_len, path,
				     depth, &size, &unknown) < 0 ||
		    size != bin.len)
			abort();
	} else if (!unknown) {
		abort();
	}
	mail_section_free(&bin);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	struct mail_result r;
	struct mail_limits lim;
	mail_limits_default(&lim);
	lim.max_parts = 200;   /* keep each run quick */
	struct mail_analyze_options opt = {&lim, NULL, NULL, true};
	mail_analyze(msg, size, &opt, &r);
	if (strlen(r.envelope) == 0 || strlen(r.bodystructure) == 0)
		abort();

	/* HEADER + TEXT == the message */
	struct mail_section_spec spec;
	struct mail_section h, t;
	mail_section_parse("HEADER", 6, &spec);
	mail_section_get(msg, size, r.parts, r.parts_len, &spec, &h);
	mail_section_parse("TEXT", 4, &spec);
	mail_section_get(msg, size, r.parts, r.parts_len, &spec, &t);
	if (h.len + t.len != size || (size > 0 && h.ptr != msg))
		abort();
	mail_section_free(&h);
	mail_section_free(&t);

	uint32_t path[4];
	check_part(msg, size, &r, path, 0);
	for (uint32_t a = 1; a <= 3; a++) {
		path[0] = a;
		check_part(msg, size, &r, path, 1);
		for (uint32_t b = 1; b <= 3; b++) {
			path[1] = b;
			check_part(msg, size, &r, path, 2);
		}
	}
	mail_result_free(&r);
	return 0;
}
