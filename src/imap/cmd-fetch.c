/*
 * FETCH and UID FETCH (RFC 9051 6.4.5, 6.4.9), with the CHANGEDSINCE and
 * VANISHED modifiers (RFC 7162). Parsing and the pass itself are in
 * imap-fetch.c; this file maps the arguments and the outcome to replies.
 * It never syncs the view: untagged EXPUNGEs are the core's business, and
 * the sequence-number form must not see them (RFC 3501 7.4.1).
 */
#include "imap-client.h"
#include "imap-fetch.h"
#include "imap-seqset.h"

#include <stdlib.h>

/* The client's UID set as written ("*" taken as the top of the UID
 * space), for VANISHED (EARLIER): it may name UIDs no longer in the view. */
static int client_uid_ranges(const struct imap_arg *arg,
			     struct store_uid_range **ranges_r, size_t *count_r)
{
	struct imap_seqset set;
	if (imap_seqset_parse(arg->str, false, &set) < 0)
		return -1;
	*ranges_r = calloc(set.count ? set.count : 1, sizeof(**ranges_r));
	if (*ranges_r == NULL)
		abort();
	for (size_t i = 0; i < set.count; i++) {
		uint32_t lo = set.ranges[i].lo ? set.ranges[i].lo : UINT32_MAX;
		uint32_t hi = set.ranges[i].hi ? set.ranges[i].hi : UINT32_MAX;
		(*ranges_r)[i].lo = lo < hi ? lo : hi;
		(*ranges_r)[i].hi = lo < hi ? hi : lo;
	}
	*count_r = imap_uid_ranges_normalize(*ranges_r, set.count);
	imap_seqset_free(&set);
	return 0;
}

void cmd_fetch(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *args = cmd->args;
	struct imap_fetch_plan *plan = NULL;
	struct store_uid_range *ranges = NULL, *cranges = NULL;
	size_t range_count = 0, crange_count = 0;
	struct store_error err = {0};
	const char *error;

	if (args[0].type != IMAP_ARG_ATOM || args[1].type == IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "FETCH needs a sequence set and attributes");
		return;
	}
	struct imap_fetch_params params = {
		.uid = cmd->uid,
		.qresync = (c->enabled & IMAP_ENABLED_QRESYNC) != 0,
	};
	if (imap_fetch_parse(&args[1], &args[2], &params, &plan, &error) < 0) {
		imap_cmd_bad(cmd, "%s", error);
		return;
	}
	if (imap_cmd_seqset(cmd, &args[0], &ranges, &range_count) < 0) {
		imap_fetch_plan_free(&plan);
		return;   /* replied BAD */
	}
	if (cmd->uid && client_uid_ranges(&args[0], &cranges, &crange_count) < 0)
		crange_count = 0;
	/* RFC 7162 3.1: FETCH MODSEQ / CHANGEDSINCE enable CONDSTORE */
	if (imap_fetch_plan_condstore(plan))
		c->enabled |= IMAP_ENABLED_CONDSTORE;

	uint32_t *seen = NULL;
	size_t seen_count = 0;
	enum imap_fetch_status st = imap_fetch_run(plan, c, ranges, range_count,
						   cranges, crange_count, &seen,
						   &seen_count, &err);
	/* The \Seen this FETCH set was reported in its own responses (with
	 * FLAGS, recorded by imap_client_told): the sync before the tagged
	 * reply leaves them out unless they changed again. */
	switch (st) {
	case IMAP_FETCH_OK:
	case IMAP_FETCH_DISCONNECTED:
		imap_cmd_ok(cmd, "%sFETCH completed", cmd->uid ? "UID " : "");
		break;
	case IMAP_FETCH_EXPUNGED:
		imap_cmd_ok(cmd, "[EXPUNGEISSUED] Some messages were already "
			    "expunged");
		break;
	case IMAP_FETCH_UNKNOWN_CTE:
		imap_cmd_no(cmd, "[UNKNOWN-CTE] Cannot decode the part's "
			    "content transfer encoding");
		break;
	case IMAP_FETCH_STORE_ERROR:
		imap_cmd_store_error(cmd, &err);
		break;
	}
	free(seen);
	imap_fetch_plan_free(&plan);
	free(ranges);
	free(cranges);
}
