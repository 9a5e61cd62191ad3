/*
 * Fuzz target for PatchObject application (RFC 8620 5.3,
 * src/jmap/jmap-patch.c) and the Email patches of Email/set. The input
 * is two JSON texts separated by a NUL: an object and a patch. The patch
 * must either apply (an object comes back, the original untouched) or be
 * refused with the offending path; then the same patch goes to
 * Email/set and Mailbox/set, which answer invalidPatch,
 * invalidProperties or apply it.
 */
#include "fuzz-jmap-env.h"
#include "jmap-private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_setup();
	if (size > 16384)
		return 0;
	const uint8_t *nul = memchr(data, 0, size);
	if (nul == NULL)
		return 0;
	json_t *obj = json_loadb((const char *)data, (size_t)(nul - data),
				 JSON_DECODE_ANY, NULL);
	json_t *patch = json_loadb((const char *)nul + 1,
				   size - (size_t)(nul - data) - 1,
				   JSON_DECODE_ANY, NULL);
	if (obj != NULL && patch != NULL) {
		char *before = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS |
						      JSON_ENCODE_ANY);
		const char *bad = NULL;
		json_t *r = jmap_patch_apply(obj, patch, &bad);
		if (r != NULL && !json_is_object(r))
			abort();
		if (r == NULL && json_is_object(obj) && json_is_object(patch) &&
		    bad == NULL)
			abort();
		char *after = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS |
						     JSON_ENCODE_ANY);
		if (strcmp(before, after) != 0)
			abort();
		free(before);
		free(after);
		json_decref(r);
	}
	if (json_is_object(patch)) {
		json_t *req = json_pack(
			"{s:[s,s],s:[[s,{s:s,s:{s:O}},s],[s,{s:s,s:{s:O}},s]]}",
			"using", "urn:ietf:params:jmap:core",
			"urn:ietf:params:jmap:mail", "methodCalls", "Email/set",
			"accountId", "A1", "update", "M1-1", patch, "e",
			"Mailbox/set", "accountId", "A1", "update", "Fnope", patch,
			"m");
		char *body = json_dumps(req, JSON_COMPACT);
		fz_api(body, strlen(body));
		free(body);
		json_decref(req);
	}
	json_decref(obj);
	json_decref(patch);
	return 0;
}
