/*
 * loftctl retention run [ADDRESS] [--now DATE]: applies the retention
 * policies (pop3_retention_days with pop3_delete, trash_retention_days,
 * junk_retention_days; removed messages kept for undelete past
 * deleted_retention_days are purged) now, to one account or to all, and
 * prints one line per account with what it removed. --now lets tests and admins move the
 * clock: "2026-12-31", "2026-12-31T08:00:00Z", "@1798675200" or "+15d"
 * (relative to the real time; also h, m, s). Dates are UTC.
 */
#include "loftctl.h"


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int parse_relative(const char *s, time_t *now_r)
{
	char *end;
	errno = 0;
	long long n = strtoll(s + 1, &end, 10);
	long long unit;

	if (errno != 0 || end == s + 1 || n < 0 || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (*end) {
	case 'd': unit = 86400; break;
	case 'h': unit = 3600; break;
	case 'm': unit = 60; break;
	case 's': unit = 1; break;
	default: return -1;
	}
	if (n > 100LL * 365 * 86400 / unit)
		return -1;
	*now_r = time(NULL) + (time_t)(n * unit);
	return 0;
}

static int parse_date(const char *s, time_t *now_r)
{
	struct tm tm;
	const char *end;

	if (s[0] == '+')
		return parse_relative(s, now_r);
	if (s[0] == '@') {
		char *e;
		errno = 0;
		long long v = strtoll(s + 1, &e, 10);
		if (errno != 0 || e == s + 1 || *e != '\0' || v < 0)
			return -1;
		*now_r = (time_t)v;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%d", &tm);
	if (end == NULL)
		return -1;
	if (*end == 'T' || *end == ' ') {
		const char *e = strptime(end + 1, "%H:%M:%S", &tm);
		if (e == NULL)
			e = strptime(end + 1, "%H:%M", &tm);
		if (e == NULL)
			return -1;
		end = e;
	}
	if (*end == 'Z')
		end++;
	if (*end != '\0')
		return -1;
	*now_r = timegm(&tm);
	return 0;
}

struct retention_out {
	struct auth *auth;
	unsigned accounts, failed;
	unsigned long long removed;
};

static bool print_report(void *ctx, int64_t user_id,
			 const struct store_retention_policy *policy,
			 const struct store_retention_report *r, const char *error)
{
	struct retention_out *out = ctx;
	struct auth_user u;
	char name[340];

	if (auth_lookup_id(out->auth, user_id, &u) == 1)
		snprintf(name, sizeof(name), "%s", u.address);
	else
		snprintf(name, sizeof(name), "user id %lld", (long long)user_id);
	out->accounts++;
	if (r == NULL) {
		out->failed++;
		printf("%s: failed: %s\n", name, error);
		return true;
	}
	out->removed += r->pop3_removed + r->trash_expunged + r->junk_expunged;
	printf("%s: pop3 removed %u, trash expunged %u, junk expunged %u\n",
	       name, r->pop3_removed, r->trash_expunged, r->junk_expunged);
	if (r->deleted_purged > 0)
		printf("%s: deleted purged %u (kept for undelete past"
		       " deleted_retention_days)\n", name, r->deleted_purged);
	return true;
}

static int cmd_retention_run(struct loftctl *ctl, int argc, char **argv)
{
	const char *address = NULL;
	time_t now = time(NULL);
	int64_t user_id = -1;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--now") == 0) {
			if (i + 1 == argc || parse_date(argv[i + 1], &now) < 0)
				return loftctl_fail("--now: expected a date like 2026-12-31, "
						    "2026-12-31T08:00:00Z, @EPOCH or +15d");
			i++;
		} else if (strncmp(argv[i], "--now=", 6) == 0) {
			if (parse_date(argv[i] + 6, &now) < 0)
				return loftctl_fail("--now: expected a date like 2026-12-31, "
						    "2026-12-31T08:00:00Z, @EPOCH or +15d");
		} else if (argv[i][0] == '-' || address != NULL) {
			return loftctl_usage(&loftctl_retention_cmds[0]);
		} else {
			address = argv[i];
		}
	}
	if (address != NULL) {
		struct auth_user u;
		if (loftctl_lookup_user(ctl, address, &u) < 0)
			return LOFTCTL_EXIT_FAIL;
		user_id = u.id;
	}
	struct store *store = loftctl_store(ctl);
	if (store == NULL)
		return LOFTCTL_EXIT_FAIL;

	struct retention_out out = {ctl->auth, 0, 0, 0};
	struct store_retention_source src = auth_retention_source(ctl->auth);
	int r = store_retention_run_accounts(store, &src, user_id, now,
					     print_report, &out);
	if (r < 0 && out.failed == 0)
		return loftctl_fail("retention failed (see the log)");
	if (out.failed > 0)
		return loftctl_fail("retention failed for %u of %u accounts",
				    out.failed, out.accounts);
	return 0;
}

const struct loftctl_cmd loftctl_retention_cmds[] = {
	{"retention", "run", "[ADDRESS] [--now DATE]", cmd_retention_run},
	{NULL, NULL, NULL, NULL},
};
