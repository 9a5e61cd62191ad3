/*
 * loftctl undelete ADDRESS [--folder F] [--since DATE] [--list]: brings
 * back messages removed within the account's deleted_retention_days
 * (store.h "undelete") into the folder they were removed from (made
 * again if it was deleted), with new UIDs. --folder: only those removed
 * from F; --since: only those removed at or after DATE (UTC, as
 * `retention run --now` takes it: 2026-12-31, 2026-12-31T08:00:00Z,
 * @EPOCH; or -2h / -3d, that long ago); --list prints them and changes
 * nothing. A running loftd's sessions see the mail at once.
 */
#include "loftctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 2026-12-31[THH:MM[:SS]][Z], @EPOCH, or -Nd/-Nh/-Nm/-Ns before now */
static int parse_since(const char *s, time_t *t_r)
{
	if (s[0] == '@' || s[0] == '-') {
		char *end;
		errno = 0;
		long long v = strtoll(s + 1, &end, 10);
		if (errno != 0 || end == s + 1 || v < 0)
			return -1;
		if (s[0] == '@') {
			if (*end != '\0')
				return -1;
			*t_r = (time_t)v;
			return 0;
		}
		long long unit = end[0] == 'd' ? 86400 : end[0] == 'h' ? 3600
			       : end[0] == 'm' ? 60 : end[0] == 's' ? 1 : 0;
		if (unit == 0 || end[1] != '\0' || v > 100LL * 366 * 86400 / unit)
			return -1;
		*t_r = time(NULL) - (time_t)(v * unit);
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *e = strptime(s, "%Y-%m-%d", &tm);
	if (e != NULL && (*e == 'T' || *e == ' ')) {
		const char *t = strptime(e + 1, "%H:%M:%S", &tm);
		e = t != NULL ? t : strptime(e + 1, "%H:%M", &tm);
	}
	if (e != NULL && *e == 'Z')
		e++;
	if (e == NULL || *e != '\0')
		return -1;
	*t_r = timegm(&tm);
	return 0;
}

static void utc(time_t t, char *out, size_t size)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

struct list_out {
	unsigned count;
	uint64_t bytes;
};

/* One line per message: removed at, folder, old UID, size, date, From,
 * Subject (tab separated: folder names may hold spaces). */
static bool print_one(void *ctx, const struct store_deleted *d)
{
	struct list_out *o = ctx;
	char at[32], date[32];
	utc(d->deleted_at, at, sizeof(at));
	utc(d->internaldate, date, sizeof(date));
	printf("%s\t%s\tUID %" PRIu32 "\t%" PRIu64 " bytes\t%s\t%s\t%s\n", at,
	       d->mailbox, d->uid, d->size, date, d->from, d->subject);
	o->count++;
	o->bytes += d->size;
	return true;
}

static int take(int *argc, char **argv, const char *flag, const char **v_r,
		bool *bad)
{
	for (int i = 0; i < *argc; i++) {
		if (strcmp(argv[i], flag) != 0)
			continue;
		if (i + 1 >= *argc) {
			*bad = true;
			return 0;
		}
		*v_r = argv[i + 1];
		memmove(&argv[i], &argv[i + 2],
			(size_t)(*argc - i - 2) * sizeof(char *));
		*argc -= 2;
		return 1;
	}
	return 0;
}

static int cmd_undelete(struct loftctl *ctl, int argc, char **argv)
{
	bool bad = false;
	const char *folder = NULL, *since_s = NULL;
	take(&argc, argv, "--folder", &folder, &bad);
	take(&argc, argv, "--since", &since_s, &bad);
	bool list = loftctl_take_flag(&argc, argv, "--list");
	struct store_deleted_filter f = {.mailbox = folder};
	if (since_s != NULL && parse_since(since_s, &f.since) < 0) {
		loftctl_fail("--since: expected a date like 2026-12-31,"
			     " 2026-12-31T08:00:00Z, @EPOCH or -2d");
		return LOFTCTL_EXIT_USAGE;
	}
	if (bad || argc != 1 || argv[0][0] == '-')
		return loftctl_usage(&loftctl_undelete_cmds[0]);
	struct auth_user u;
	if (loftctl_lookup_user(ctl, argv[0], &u) < 0)
		return LOFTCTL_EXIT_FAIL;
	struct store *store = loftctl_store(ctl);
	if (store == NULL)
		return LOFTCTL_EXIT_FAIL;
	struct store_user *su;
	struct store_error err = {0};
	if (store_user_open(store, u.id, &su, &err) < 0)
		return loftctl_fail("%s: %s", u.address, err.msg);
	int rc = 0;
	if (list) {
		struct list_out o = {0};
		if (store_deleted_list(su, &f, print_one, &o, &err) < 0)
			rc = loftctl_fail("%s: %s", u.address, err.msg);
		else
			fprintf(stderr, "%s: %u messages (%" PRIu64 " bytes)"
				" can be brought back\n", u.address, o.count,
				o.bytes);
	} else {
		struct store_undelete_report r;
		if (store_undelete(su, &f, &r, &err) < 0) {
			rc = loftctl_fail("%s: %s", u.address, err.msg);
		} else {
			printf("%s: %u messages (%" PRIu64 " bytes) brought"
			       " back", u.address, r.messages, r.bytes);
			if (r.mailboxes_made > 0)
				printf(", %u folders made again",
				       r.mailboxes_made);
			printf("\n");
			if (r.messages > 0)
				loftctl_tell_changed(ctl, u.id);
		}
	}
	store_user_unref(&su);
	return rc;
}

const struct loftctl_cmd loftctl_undelete_cmds[] = {
	{"undelete", NULL, "ADDRESS [--folder F] [--since DATE] [--list]"
	 "   (removed messages kept for deleted_retention_days)",
	 cmd_undelete},
	{NULL, NULL, NULL, NULL},
};
