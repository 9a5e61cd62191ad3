/*
 * loftctl dkim add|list|del: the DKIM keys loftd signs with
 * (src/mailauth, data_dir/dkim/<domain>/<selector>.pem). A key added while
 * loftd runs signs its next message; `add` and `list` print the TXT
 * record to publish, as `loftctl dns DOMAIN` does. With the accounts in
 * PostgreSQL the keys are the database's (every node signs with them:
 * daemon-dkim.h); this node's directory is made like them first.
 */
#include "loftctl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "daemon-dkim.h"
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

/* Shared keys: this node's copies made like the database's rows. */
static int mirror(struct loftctl *ctl, const char *dir)
{
	char *err = NULL;
	if (daemon_dkim_mirror(ctl->auth, dir, &err) >= 0)
		return 0;
	int rc = loftctl_fail("DKIM keys of the database: %s", err);
	free(err);
	return rc;
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
	if (mirror(ctl, dir) < 0) {
		free(dir);
		return 1;
	}
	int rc = dkim_key_create(dir, domain, selector, type, bits, &info, &err);
	if (rc == 0 && auth_dkim_shared(ctl->auth)) {
		/* the key becomes every node's */
		char *pem = NULL;
		rc = dkim_key_export(dir, info.domain, info.selector, &pem,
				     &err);
		if (rc == 0) {
			int added = auth_dkim_key_add(ctl->auth, info.domain,
						      info.selector, pem,
						      info.created, &err);
			if (added == 0)
				err = xasprintf("%s has a key %s already (made"
						" on another node meanwhile)",
						info.domain, info.selector);
			rc = added == 1 ? 0 : -1;
		}
		if (pem != NULL) {
			explicit_bzero(pem, strlen(pem));
			free(pem);
		}
		if (rc < 0) {
			char *e2 = NULL;
			dkim_key_delete(dir, info.domain, info.selector, &e2);
			free(e2);
			dkim_key_info_free(&info);
		}
	}
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
	if (mirror(ctl, dir) < 0) {
		free(dir);
		return 1;
	}
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
	if (auth_dkim_shared(ctl->auth)) {
		/* gone for every node (each removes its copy); then here.
		 * Names as stored: lower case, no final dot */
		char dom[256], sel[64];
		snprintf(dom, sizeof(dom), "%s", argv[0]);
		snprintf(sel, sizeof(sel), "%s", argv[1]);
		size_t dl = strlen(dom);
		if (dl > 0 && dom[dl - 1] == '.')
			dom[dl - 1] = '\0';
		for (char *p = dom; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		for (char *p = sel; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		rc = auth_dkim_key_del(ctl->auth, dom, sel, &err);
		if (rc == 0)
			err = xasprintf("no key %s for %s", argv[1], argv[0]);
		if (rc == 1) {
			char *e2 = NULL;
			dkim_key_delete(dir, argv[0], argv[1], &e2);
			free(e2);
		}
		rc = rc == 1 ? 0 : -1;
	} else {
		rc = dkim_key_delete(dir, argv[0], argv[1], &err);
	}
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
