/*
 * loftctl token add ADDRESS [--name N] [--expires D]: a new app password
 * (a Bearer token for HTTP/JMAP that also works as the account's IMAP
 * and POP3 password), printed once: only its hash is kept.
 * loftctl token list ADDRESS / token del ADDRESS NAME.
 * D is a duration (90d, 12h) or a date (2027-01-31, UTC midnight).
 */
#include "loftctl.h"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Takes "--opt VALUE" out of argv; NULL if absent, "" if the value is
 * missing. */
static const char *take_opt(int *argc, char **argv, const char *opt)
{
	for (int i = 0; i < *argc; i++) {
		if (strcmp(argv[i], opt) != 0)
			continue;
		const char *v = i + 1 < *argc ? argv[i + 1] : "";
		int drop = i + 1 < *argc ? 2 : 1;
		memmove(&argv[i], &argv[i + drop],
			(size_t)(*argc - i - drop + 1) * sizeof(char *));
		*argc -= drop;
		return v;
	}
	return NULL;
}

static int parse_expiry(const char *s, time_t *t_r)
{
	uint64_t secs;
	int y, m, d;
	char tail;
	if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) == 3) {
		struct tm tm;
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = y - 1900;
		tm.tm_mon = m - 1;
		tm.tm_mday = d;
		if (m < 1 || m > 12 || d < 1 || d > 31)
			return -1;
		*t_r = timegm(&tm);
		return *t_r > time(NULL) ? 0 : -1;
	}
	if (config_parse_duration(s, &secs) < 0 || secs == 0 ||
	    secs > 100ull * 365 * 86400)
		return -1;
	*t_r = time(NULL) + (time_t)secs;
	return 0;
}

static void day(time_t t, char out[16])
{
	struct tm tm;
	if (t == 0) {
		snprintf(out, 16, "never");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(out, 16, "%Y-%m-%d", &tm);
}

static int token_add(struct loftctl *ctl, int argc, char **argv)
{
	const char *name = take_opt(&argc, argv, "--name");
	const char *exp = take_opt(&argc, argv, "--expires");
	if (argc != 1 || (name != NULL && name[0] == '\0') ||
	    (exp != NULL && exp[0] == '\0'))
		return loftctl_usage(&loftctl_token_cmds[0]);
	time_t expires = 0;
	if (exp != NULL && parse_expiry(exp, &expires) < 0)
		return loftctl_fail("--expires %s: give a duration (90d, 12h) "
				    "or a future date (YYYY-MM-DD)", exp);
	char *token = NULL, *given = NULL, *err = NULL;
	if (auth_token_add(ctl->auth, argv[0], name, expires, &token, &given,
			   &err) < 0) {
		int rc = loftctl_fail("%s", err);
		free(err);
		return rc;
	}
	char when[16];
	day(expires, when);
	printf("%s\n", token);
	fprintf(stderr, "token '%s' for %s (expires: %s). It is shown only "
		"this once: use it as the password of one device (IMAP, POP3, "
		"or HTTP Bearer).\n", given, argv[0], when);
	free(token);
	free(given);
	return 0;
}

static void print_token(void *ctx, const struct auth_token_info *info)
{
	char c[16], e[16], u[16];
	day(info->created, c);
	day(info->expires, e);
	day(info->last_used, u);
	printf("%-24s created %s  expires %-10s  last used %s\n", info->name,
	       c, e, u);
	(*(int *)ctx)++;
}

static int token_list(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 1)
		return loftctl_usage(&loftctl_token_cmds[1]);
	char *err = NULL;
	int count = 0;
	if (auth_token_list(ctl->auth, argv[0], print_token, &count, &err) < 0) {
		int rc = loftctl_fail("%s", err);
		free(err);
		return rc;
	}
	if (count == 0)
		fprintf(stderr, "%s has no tokens\n", argv[0]);
	return 0;
}

static int token_del(struct loftctl *ctl, int argc, char **argv)
{
	if (argc != 2)
		return loftctl_usage(&loftctl_token_cmds[2]);
	char *err = NULL;
	if (auth_token_del(ctl->auth, argv[0], argv[1], &err) < 0) {
		int rc = loftctl_fail("%s", err);
		free(err);
		return rc;
	}
	printf("token '%s' of %s deleted\n", argv[1], argv[0]);
	return 0;
}

const struct loftctl_cmd loftctl_token_cmds[] = {
	{"token", "add", "ADDRESS [--name NAME] [--expires 90d|YYYY-MM-DD]",
	 token_add},
	{"token", "list", "ADDRESS", token_list},
	{"token", "del", "ADDRESS NAME", token_del},
	{NULL, NULL, NULL, NULL},
};
