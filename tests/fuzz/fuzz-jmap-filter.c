/*
 * Fuzz target for FilterCondition parsing (RFC 8621 4.4.1, 2.3, 7.3;
 * src/jmap/jmap-email-query.c, jmap-mailbox.c): the input is a filter,
 * given to Email/query, Email/queryChanges, SearchSnippet/get,
 * Mailbox/query and EmailSubmission/query of a small real account.
 * Each must answer (a result or an error), never crash.
 */
#include "fuzz-jmap-env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_setup();
	if (size > 16384)
		return 0;
	json_error_t jerr;
	json_t *f = json_loadb((const char *)data, size, 0, &jerr);
	if (f == NULL)
		return 0;
	json_t *req = json_pack(
		"{s:[s,s,s],s:["
		"[s,{s:s,s:O,s:b,s:i},s],"
		"[s,{s:s,s:O,s:s},s],"
		"[s,{s:s,s:O,s:[s]},s],"
		"[s,{s:s,s:O,s:b},s],"
		"[s,{s:s,s:O},s]]}",
		"using", "urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail",
		"urn:ietf:params:jmap:submission", "methodCalls",
		"Email/query", "accountId", "A1", "filter", f, "collapseThreads",
		1, "limit", 10, "q",
		"Email/queryChanges", "accountId", "A1", "filter", f,
		"sinceQueryState", "1", "qc",
		"SearchSnippet/get", "accountId", "A1", "filter", f, "emailIds",
		"M1-1", "s",
		"Mailbox/query", "accountId", "A1", "filter", f, "filterAsTree", 1,
		"m",
		"EmailSubmission/query", "accountId", "A1", "filter", f, "es");
	char *body = json_dumps(req, JSON_COMPACT);
	fz_api(body, strlen(body));
	free(body);
	json_decref(req);
	json_decref(f);
	return 0;
}
