/*
 * Fuzz target: a section spec (first line) against a message (the rest):
 * mail_section_parse() must accept or refuse cleanly, and any accepted
 * spec resolves inside the message. Also feeds arbitrary part maps to
 * the readers: a corrupt map is an error, never a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	const char *nl = memchr(p, '\n', size);
	size_t spec_len = nl ? (size_t)(nl - p) : size;
	const char *msg = nl ? nl + 1 : p + size;
	size_t msg_len = size - (size_t)(msg - p);
	struct mail_section_spec spec;
	struct mail_result r;
	mail_analyze(msg, msg_len, NULL, &r);
	if (mail_section_parse(p, spec_len, &spec) == 0) {
		struct mail_section sec;
		if (mail_section_get(msg, msg_len, r.parts, r.parts_len, &spec,
				     &sec) < 0)
			abort();
		mail_section_free(&sec);
		/* the same spec against the raw input as a "part map" */
		if (mail_section_get(msg, msg_len, data, size, &spec, &sec) == 0 &&
		    sec.owned.data == NULL && sec.len > 0 &&
		    (sec.ptr < msg || sec.ptr + sec.len > msg + msg_len))
			abort();
		mail_section_free(&sec);
		bool unknown;
		uint64_t bsize;
		(void)mail_binary_size(msg, msg_len, data, size, spec.path,
				       spec.path_len, &bsize, &unknown);
		mail_section_spec_free(&spec);
	}
	struct mail_part_info info;
	uint32_t path[2] = {1, 2};
	(void)mail_part_lookup(data, size, path, 2, &info);
	mail_result_free(&r);
	return 0;
}
