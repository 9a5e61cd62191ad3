/*
 * loftctl dkim add|list|del: the DKIM keys loftd signs with
 * (src/mailauth, data_dir/dkim/<domain>/<selector>.pem). A key added while
 * loftd runs signs its next message; `add` and `list` print the TXT
 * record to publish, as `loftctl dns DOMAIN` does.
 */
#include "loftctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "mailauth.h"

char *loftctl_dkim_dir(struct loftctl *ctl)
{
	return xasprintf("%s/dkim", ctl->set.data_dir);
}

void loftctl_print_txt(const char *owner, const char *data)
{
	size_t n = strlen(data);

	/* RFC 1035 5.1: one line, character-strings of at most 255 */
	printf("%-40s 3600 IN TXT ", owner);
	for (size_t i = 0; i < n || i == 0; i += 255) {
		printf("%s\"", i > 0 ? " " : "");
		for (size_t k = i; k < n && k < i + 255; k++) {
			if (data[k] == '"' || data[k] == '\\')
				putchar('\\');
			putchar(data[k]);
		}
		putchar('"');
		if (n == 0)
			break;
	}
	putchar('\n');
}

static void print_record(const struct dkim_key_info *info)
{
	char owner[400];

	snprintf(owner, sizeof(owner), "%s._domainkey.%s.", info->selector,
		 info->domain);
	loftctl_print_txt(owner, info->record);
}

static const char *host_name(struct loftctl *ctl)
{
	const char *h = config_get(ctl->cfg, "", "hostname");
	return h != NULL ? h : "";
}

static int dkim_add(struct loftctl *ctl, int argc, char **argv)
{
	const char *selector = NULL, *domain = NULL;
	enum dkim_key_type type = DKIM_KEY_RSA;
	unsigned bits = 2048;
	struct dkim_key_info info;
	char *err = NULL, *dir;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--selector") == 0 && i + 1 < argc) {
			selector = argv[++i];
		} else if (strcmp(argv[i], "--rsa") == 0 && i + 1 < argc) {
			char *end;
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (*end != '\0' || v > 65536)
				return loftctl_fail("--rsa takes a number of "
						    "bits, like 2048");
			bits = (unsigned)v;
			type = DKIM_KEY_RSA;
		} else if (strcmp(argv[i], "--ed25519") == 0) {
			type = DKIM_KEY_ED25519;
		} else if (argv[i][0] != '-' && domain == NULL) {
			domain = argv[i];
		} else {
			return loftctl_usage(&loftctl_dkim_cmds[0]);
		}
	}
	if (domain == NULL)
		return loftctl_usage(&loftctl_dkim_cmds[0]);
	/* signing keys are for domains served here (and the host name,
	 * which signs bounces from MAILER-DAEMON@) */
	if (!auth_domain_exists(ctl->auth, domain) &&
	    strcasecmp(domain, host_name(ctl)) != 0)
		return loftctl_fail("%s is not a domain of this server "
				    "(loftctl domain add %s)", domain, domain);
	dir = loftctl_dkim_dir(ctl);
	int rc = dkim_key_create(dir, domain, selector, type, bits, &info, &err);
	free(dir);
	if (rc < 0) {
		rc = loftctl_fail("%s", err);
		free(err);
		return rc;
	}
	printf("; %s key %s for %s: publish this record, then mail from %s "
	       "is signed with it\n", type == DKIM_KEY_ED25519 ? "Ed25519" : "RSA",
	       info.selector, info.domain, info.domain);
	print_record(&info);
	dkim_key_info_free(&info);
	return 0;
}

static void list_one(void *ctx, const struct dkim_key_info *info)
{
	bool *records = ctx;
	char when[32];
	struct tm tm;

	localtime_r(&info->created, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d", &tm);
	if (*records) {
		print_record(info);
		return;
	}
	printf("%s %s %s %u %s\n", info->domain, info->selector,
	       info->type == DKIM_KEY_ED25519 ? "ed25519" : "rsa", info->bits,
	       when);
}

static int dkim_list(struct loftctl *ctl, int argc, char **argv)
{
	bool records = loftctl_take_flag(&argc, argv, "--records");
	char *err = NULL, *dir;
	int rc;

	if (argc > 1)
		return loftctl_usage(&loftctl_dkim_cmds[1]);
	dir = loftctl_dkim_dir(ctl);
	rc = dkim_key_list(dir, argc == 1 ? argv[0] : NULL, list_one, &records,
			   &err);
	free(dir);
	if (rc < 0) {
		rc = loftctl_fail("%s", err);
		free(err);
	}
	return rc;
}

static int dkim_del(struct loftctl *ctl, int argc, char **argv)
{
	char *err = NULL, *dir;
	int rc;

	if (argc != 2)
		return loftctl_usage(&loftctl_dkim_cmds[2]);
	dir = loftctl_dkim_dir(ctl);
	rc = dkim_key_delete(dir, argv[0], argv[1], &err);
	free(dir);
	if (rc < 0) {
		rc = loftctl_fail("%s", err);
		free(err);
		return rc;
	}
	printf("deleted DKIM key %s of %s (remove its DNS record once mail "
	       "signed with it has been read)\n", argv[1], argv[0]);
	return 0;
}

const struct loftctl_cmd loftctl_dkim_cmds[] = {
	{"dkim", "add", "DOMAIN [--selector NAME] [--rsa BITS | --ed25519]   "
	 "(default RSA 2048)", dkim_add},
	{"dkim", "list", "[DOMAIN] [--records]", dkim_list},
	{"dkim", "del", "DOMAIN SELECTOR", dkim_del},
	{NULL, NULL, NULL, NULL},
};
