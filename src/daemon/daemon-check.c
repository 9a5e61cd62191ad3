/*
 * Everything loftd checks before it starts, shared by `loftd --check` and
 * the start itself (and SIGHUP's reload), so the check refuses what the
 * start would refuse, without binding or writing anything: the
 * configuration's names and values (daemon-config.c and each module's
 * own keys), the service user, data_dir's owner, the front-ends' keys,
 * listeners that overlap, socket directories that cannot be made, and
 * whether the children's files can be confined ([security] sandbox).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "daemon.h"
#include "log.h"

static bool frontend_wanted(const struct daemon_frontend *fe,
			    const struct config *cfg)
{
	return fe->listeners != NULL ||
	       (fe->plain >= 0 &&
		config_has_section(cfg, daemon_proto_names[fe->plain])) ||
	       (fe->tls >= 0 &&
		config_has_section(cfg, daemon_proto_names[fe->tls]));
}

/* A protocol section whose front-end is not built into this loftd. */
static void warn_unbuilt(const struct daemon *d, struct buf *warnings)
{
	const struct config *cfg = d->cfg;
	for (int p = 0; p < DAEMON_PROTO_COUNT; p++) {
		bool built = false;
		for (const struct daemon_frontend *fe = d->frontends; fe->name;
		     fe++)
			if (fe->plain == p || fe->tls == p)
				built = true;
		const char *name = daemon_proto_names[p];
		if (built || !config_has_section(cfg, name))
			continue;
		for (size_t i = 0; i < cfg->section_count; i++) {
			if (strcmp(cfg->sections[i], name) == 0) {
				buf_printf(warnings, "%s:%d: warning: %s is not "
					   "built into this loftd; [%s] is "
					   "ignored\n", cfg->path,
					   cfg->section_lines[i], name, name);
				break;
			}
		}
	}
}

/* Each wanted front-end is created without store, auth or net, which
 * checks its keys, and destroyed again. */
static int check_frontends(struct daemon *d, struct buf *errors)
{
	int rc = 0;
	struct daemon_services sv = {.cfg = d->cfg, .dc = &d->dc};
	for (struct daemon_frontend *fe = d->frontends; fe->name; fe++) {
		if (!frontend_wanted(fe, d->cfg))
			continue;
		void *server = fe->create(&sv, errors);
		if (server == NULL)
			rc = -1;
		else
			fe->destroy(server);
	}
	return rc;
}

static void collect_listeners(struct daemon *d)
{
	daemon_listeners_free(d);
	for (struct daemon_frontend *fe = d->frontends; fe->name; fe++) {
		if (!frontend_wanted(fe, d->cfg))
			continue;
		if (fe->listeners != NULL)
			fe->listeners(d, fe);
		for (int k = 0; k < 2; k++) {
			int p = k == 0 ? fe->plain : fe->tls;
			if (p < 0)
				continue;
			const struct daemon_listen *l = &d->dc.listen[p];
			for (size_t i = 0; i < l->count; i++)
				daemon_listener_add(d, l->addrs[i],
						    daemon_proto_names[p],
						    l->line, k == 1, 0666, fe);
		}
	}
}

static int check_user(struct daemon *d, bool check_only, struct buf *errors,
		      struct buf *warnings)
{
	const struct config_entry *e = config_find(d->cfg, "", "user");
	char *msg = NULL;
	if (daemon_user_resolve(e != NULL ? e->value : NULL, &d->user,
				&msg) < 0) {
		buf_printf(errors, "%s:%d: %s\n", d->cfg->path, e->line, msg);
		free(msg);
		return -1;
	}
	if (d->user.set && geteuid() != 0 && geteuid() != d->user.uid &&
	    !check_only) {
		buf_printf(errors, "%s:%d: user = %s: loftd must be started as "
			   "root or as %s\n", d->cfg->path, e->line,
			   d->user.name, d->user.name);
		return -1;
	}
	if (!d->user.set && geteuid() == 0 && check_only)
		buf_printf(warnings, "%s:0: warning: no `user`: every loftd "
			   "process runs as root (set user = loft)\n",
			   d->cfg->path);
	return 0;
}

/* Landlock, or a root of its own, for every child; else [security]
 * sandbox = best-effort (the default) warns, and required refuses here,
 * before anything starts. A --check by another user than the one who
 * starts loftd (root, for `user =`) cannot tell: nothing then. */
static int check_sandbox(struct daemon *d, bool check_only,
			 struct buf *errors, struct buf *warnings)
{
	if (check_only && d->user.set && geteuid() != 0)
		return 0;
	char *why = NULL;
	if (daemon_sandbox_possible(&why))
		return 0;
	const struct config_entry *e = config_find(d->cfg, "security",
						   "sandbox");
	int line = e != NULL ? e->line : 0;
	int rc = 0;
	if (d->dc.sandbox_best_effort) {
		buf_printf(warnings, "%s:%d: warning: %s: loftd's processes "
			   "run with their files unconfined ([security] "
			   "sandbox = best-effort; required refuses to start "
			   "instead)\n", d->cfg->path, line, why);
	} else {
		buf_printf(errors, "%s:%d: %s: loftd will not run its "
			   "processes with their files unconfined. Use a kernel "
			   "with Landlock (Linux 5.13 or later, "
			   "CONFIG_SECURITY_LANDLOCK=y, landlock in the lsm= "
			   "list), or start loftd as root where it may make a "
			   "mount namespace (CAP_SYS_ADMIN, not in a chroot), "
			   "or set [security] sandbox = best-effort\n",
			   d->cfg->path, line, why);
		rc = -1;
	}
	free(why);
	return rc;
}

int daemon_check(struct daemon *d, bool check_only, struct buf *errors,
		 struct buf *warnings)
{
	int rc = daemon_config_check(d->cfg, &d->dc, errors, warnings);
	if (auth_settings_from_config(d->cfg, &d->aset, errors) < 0)
		rc = -1;
	if (store_settings_from_config(d->cfg, &d->sset, errors) < 0)
		rc = -1;
	if (daemon_extras_check(d->cfg, errors) < 0)
		rc = -1;
	warn_unbuilt(d, warnings);
	if (check_user(d, check_only, errors, warnings) < 0)
		rc = -1;
	if (rc == 0 && check_sandbox(d, check_only, errors, warnings) < 0)
		rc = -1;
	if (rc == 0) {
		char *msg = NULL;
		if (daemon_data_dir_check(d->dc.data_dir, &d->user, &msg) < 0) {
			const struct config_entry *e =
				config_find(d->cfg, "", "data_dir");
			buf_printf(errors, "%s:%d: %s\n", d->cfg->path,
				   e != NULL ? e->line : 0, msg);
			free(msg);
			rc = -1;
		}
	}
	if (check_frontends(d, errors) < 0)
		rc = -1;
	collect_listeners(d);
	if (daemon_listeners_check(d, errors) < 0)
		rc = -1;
	return rc;
}

void daemon_log_lines(enum log_level level, const char *prefix,
		      const char *text)
{
	while (text != NULL && *text != '\0') {
		const char *nl = strchr(text, '\n');
		int n = nl ? (int)(nl - text) : (int)strlen(text);
		if (n > 0)
			log_msg(level, "loftd", NULL, "%s%.*s", prefix, n, text);
		text = nl ? nl + 1 : NULL;
	}
}

void daemon_deinit(struct daemon *d)
{
	daemon_listeners_free(d);
	daemon_config_deinit(&d->dc);
}
