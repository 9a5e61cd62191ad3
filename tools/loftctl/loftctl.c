/*
 * loftctl [--config FILE] GROUP VERB ARGS...: finds the verb in the
 * groups' command tables, opens accounts.db (and the store when a verb
 * needs it) and runs it. The configuration is --config FILE, else
 * $LOFT_CONFIG, else /etc/loft/loftd.conf. Works on the files directly,
 * whether or not loftd runs: SQLite's locks (WAL, busy timeout) keep both
 * consistent, and loftd reads accounts.db at every lookup, so changes
 * take effect there at once. What only the running loftd can do (end
 * sessions) goes over its control socket (src/control).
 */
#include "loftctl.h"

#include "buf.h"
#include "config.h"
#include "control.h"
#include "daemon.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static const struct loftctl_cmd *const loftctl_groups[] = {
	loftctl_user_cmds,
	loftctl_domain_cmds,
	loftctl_alias_cmds,
	loftctl_check_cmds,
	loftctl_kick_cmds,
	loftctl_status_cmds,
	loftctl_token_cmds,
	loftctl_dns_cmds,
	loftctl_ban_cmds,
	loftctl_retention_cmds,
	loftctl_undelete_cmds,
	loftctl_acl_cmds,
	loftctl_group_cmds,
	loftctl_shared_cmds,
	loftctl_mailbox_cmds,
	loftctl_migrate_store_cmds,
#ifdef LOFTCTL_HAVE_MIGRATE
	loftctl_migrate_cmds,
#endif
#ifdef LOFTCTL_HAVE_QUEUE
	loftctl_queue_cmds,
	loftctl_sieve_cmds,
#endif
#ifdef LOFTCTL_HAVE_MAILAUTH
	loftctl_dkim_cmds,
#endif
	NULL,
};

int loftctl_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("loftctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return LOFTCTL_EXIT_FAIL;
}

int loftctl_usage(const struct loftctl_cmd *cmd)
{
	fprintf(stderr, "usage: loftctl [--config FILE] %s%s%s %s\n", cmd->group,
		cmd->verb ? " " : "", cmd->verb ? cmd->verb : "", cmd->usage);
	return LOFTCTL_EXIT_USAGE;
}

static void print_help(FILE *f)
{
	fputs("usage: loftctl [--config FILE] GROUP VERB [ARGS...]\n"
	      "       (FILE: --config, else $LOFT_CONFIG, else "
	      LOFTCTL_DEFAULT_CONFIG ")\n", f);
	for (int g = 0; loftctl_groups[g] != NULL; g++) {
		for (const struct loftctl_cmd *c = loftctl_groups[g];
		     c->group != NULL; c++) {
			fprintf(f, "  %s%s%s %s\n", c->group, c->verb ? " " : "",
				c->verb ? c->verb : "", c->usage);
		}
	}
}

bool loftctl_take_flag(int *argc, char **argv, const char *flag)
{
	for (int i = 0; i < *argc; i++) {
		if (strcmp(argv[i], flag) == 0) {
			memmove(&argv[i], &argv[i + 1],
				(size_t)(*argc - i) * sizeof(char *));
			(*argc)--;
			return true;
		}
	}
	return false;
}

struct store *loftctl_store(struct loftctl *ctl)
{
	if (ctl->store != NULL)
		return ctl->store;
	struct store_settings set = ctl->store_set;
	set.limits = auth_store_limits;
	set.limits_ctx = ctl->auth;
	set.acl_hint = auth_acl_hint;
	set.acl_hint_ctx = ctl->auth;
	struct store_error err = {0};
	if (store_open(&set, &ctl->store, &err) < 0) {
		loftctl_fail("cannot open the mail store in %s: %s",
			     ctl->set.data_dir, err.msg);
		return NULL;
	}
	/* A short-lived process: the search index over what it writes
	 * (import, restore, undelete, a check's repair) is loftd's to fill,
	 * told by loftctl_tell_changed or when it next opens the account;
	 * nor does loftctl index an account it finds behind. */
	store_index_elsewhere(ctl->store);
	return ctl->store;
}

int loftctl_lookup_user(struct loftctl *ctl, const char *address,
			struct auth_user *user_r)
{
	struct auth_user u;
	int rc = auth_lookup(ctl->auth, address, &u);
	if (rc < 0) {
		loftctl_fail("cannot read accounts.db");
		return -1;
	}
	/* auth_lookup resolves aliases; admin verbs want the account itself. */
	if (rc == 0 || strcasecmp(u.address, address) != 0) {
		loftctl_fail("no user %s", address);
		return -1;
	}
	*user_r = u;
	return 0;
}


int loftctl_kick(struct loftctl *ctl, const struct auth_user *user,
		 bool *running_r, unsigned *sessions_r)
{
	char *why = NULL;
	char *path = control_socket_path(ctl->cfg, &why);
	if (path == NULL) {
		loftctl_fail("%s", why);
		free(why);
		return -1;
	}
	char id[32];
	snprintf(id, sizeof(id), "%lld", (long long)user->id);
	const char *words[] = {"kick", id};
	char *final = NULL;
	enum control_call_result r = control_call(path, words, 2,
						  LOFTCTL_CONTROL_TIMEOUT_MS,
						  NULL, NULL, &final);
	int rc = 0;
	*running_r = r != CONTROL_CALL_NOT_RUNNING;
	*sessions_r = 0;
	if (r == CONTROL_CALL_OK)
		sscanf(final, "%u", sessions_r);
	else if (r != CONTROL_CALL_NOT_RUNNING)
		rc = loftctl_fail("cannot end the sessions of %s: %s",
				  user->address, final);
	/* Nodes sharing a database (docs/scale-out.md): a loftd here told
	 * the others through it; without one, this process does. */
	if (r == CONTROL_CALL_NOT_RUNNING &&
	    ctl->store_set.backend == STORE_BACKEND_POSTGRES) {
		struct store *store = loftctl_store(ctl);
		if (store == NULL)
			rc = -1;
		else
			(void)store_end_sessions(store, user->id);
	}
	free(final);
	free(path);
	return rc;
}

void loftctl_tell_changed(struct loftctl *ctl, int64_t user_id)
{
	char *why = NULL;
	char *path = control_socket_path(ctl->cfg, &why);
	if (path == NULL) {
		free(why);
		return;
	}
	char id[32];
	snprintf(id, sizeof(id), "%lld", (long long)user_id);
	const char *words[] = {"changed", id};
	char *final = NULL;
	enum control_call_result r = control_call(path, words, 2,
						  LOFTCTL_CONTROL_TIMEOUT_MS,
						  NULL, NULL, &final);
	/* the change is committed: a loftd that cannot be told now shows
	 * it at its sessions' next sync */
	if (r != CONTROL_CALL_OK && r != CONTROL_CALL_NOT_RUNNING)
		fprintf(stderr, "loftctl: note: loftd was not told of the"
			" change (%s); its sessions see it at their next"
			" sync\n", final ? final : "no answer");
	free(final);
	free(path);
}

#define LOFTCTL_TELL_EVERY_MS 100

struct loftctl_teller {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int64_t pending;   /* a user id to tell of (0: none) */
	bool stop;
};

static void *teller_main(void *arg)
{
	struct loftctl *ctl = arg;
	struct loftctl_teller *t = ctl->teller;
	pthread_mutex_lock(&t->mu);
	for (;;) {
		while (t->pending == 0 && !t->stop)
			pthread_cond_wait(&t->cond, &t->mu);
		if (t->pending == 0)
			break;   /* stopping, nothing left to tell */
		int64_t id = t->pending;
		t->pending = 0;
		pthread_mutex_unlock(&t->mu);
		loftctl_tell_changed(ctl, id);
		pthread_mutex_lock(&t->mu);
		/* the next call no sooner than LOFTCTL_TELL_EVERY_MS, unless
		 * stopping (then what is pending goes at once) */
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += LOFTCTL_TELL_EVERY_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		while (!t->stop && pthread_cond_timedwait(&t->cond, &t->mu,
							  &until) == 0)
			;
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

void loftctl_tell_soon(struct loftctl *ctl, int64_t user_id)
{
	if (ctl->teller == NULL) {
		struct loftctl_teller *t = xcalloc(1, sizeof(*t));
		pthread_mutex_init(&t->mu, NULL);
		pthread_cond_init(&t->cond, NULL);
		ctl->teller = t;
		if (pthread_create(&t->thread, NULL, teller_main, ctl) != 0) {
			pthread_mutex_destroy(&t->mu);
			pthread_cond_destroy(&t->cond);
			free(t);
			ctl->teller = NULL;
			loftctl_tell_changed(ctl, user_id);
			return;
		}
	}
	struct loftctl_teller *t = ctl->teller;
	pthread_mutex_lock(&t->mu);
	/* another account's pending call goes now (restore of every
	 * account: one after the other) */
	int64_t other = t->pending != user_id ? t->pending : 0;
	t->pending = user_id;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->mu);
	if (other != 0)
		loftctl_tell_changed(ctl, other);
}

void loftctl_tell_stop(struct loftctl *ctl)
{
	struct loftctl_teller *t = ctl->teller;
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->mu);
	t->stop = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->thread, NULL);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cond);
	free(t);
	ctl->teller = NULL;
}

static int read_line(char *buf, size_t size)
{
	if (fgets(buf, (int)size, stdin) == NULL)
		return -1;
	size_t n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (!feof(stdin))
		return -2;   /* longer than the buffer */
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

static int read_tty_line(const char *prompt, char *buf, size_t size)
{
	struct termios old, quiet;
	fprintf(stderr, "%s", prompt);
	fflush(stderr);
	bool echo_off = tcgetattr(STDIN_FILENO, &old) == 0;
	if (echo_off) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	int rc = read_line(buf, size);
	if (echo_off)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	return rc;
}

int loftctl_read_secret(const char *prompt, bool confirm, char *buf,
			size_t size)
{
	int rc;
	if (isatty(STDIN_FILENO)) {
		rc = read_tty_line(prompt, buf, size);
		if (rc == 0 && confirm) {
			char *again = xmalloc(size);
			rc = read_tty_line("again: ", again, size);
			if (rc == 0 && strcmp(again, buf) != 0) {
				explicit_bzero(again, size);
				free(again);
				return loftctl_fail("the two entries differ"),
				       -1;
			}
			explicit_bzero(again, size);
			free(again);
		}
	} else {
		rc = read_line(buf, size);
	}
	if (rc == -2)
		return loftctl_fail("input line too long (at most %zu bytes)",
				    size - 2), -1;
	if (rc < 0)
		return loftctl_fail("expected one line on stdin"), -1;
	if (buf[0] == '\0')
		return loftctl_fail("empty line on stdin"), -1;
	return 0;
}

static const struct loftctl_cmd *find_cmd(int argc, char **argv, int *used_r)
{
	for (int g = 0; loftctl_groups[g] != NULL; g++) {
		for (const struct loftctl_cmd *c = loftctl_groups[g];
		     c->group != NULL; c++) {
			if (strcmp(c->group, argv[0]) != 0)
				continue;
			if (c->verb == NULL) {
				*used_r = 1;
				return c;
			}
			if (argc > 1 && strcmp(c->verb, argv[1]) == 0) {
				*used_r = 2;
				return c;
			}
		}
	}
	return NULL;
}

static bool group_exists(const char *name)
{
	for (int g = 0; loftctl_groups[g] != NULL; g++) {
		if (loftctl_groups[g][0].group != NULL &&
		    strcmp(loftctl_groups[g][0].group, name) == 0)
			return true;
	}
	return false;
}

/* Run as root with `user = NAME`, loftctl becomes NAME before it touches
 * data_dir: what it creates there (accounts.db, an index, a blob) must be
 * NAME's, as loftd's children run as NAME. A missing data_dir is created
 * as loftd would (owned by NAME). */
static int become_service_user(struct loftctl *ctl, const char *dest,
			       char **error_r)
{
	const char *name = config_get(ctl->cfg, "", "user");
	if (name == NULL || geteuid() != 0)
		return 0;
	struct daemon_user u;
	if (daemon_user_resolve(name, &u, error_r) < 0 ||
	    daemon_data_dir_prepare(ctl->set.data_dir, &u, error_r) < 0)
		return -1;
	/* A backup's or an export's DEST that does not exist yet is made
	 * for the user, as loftd makes data_dir: `loftctl backup
	 * /srv/backup` as root must not fail because /srv is root's. Only
	 * the last component, and only what this run made is chowned. */
	struct stat st;
	if (dest != NULL && dest[0] != '\0' && lstat(dest, &st) < 0 &&
	    errno == ENOENT) {
		char *copy = xstrdup(dest);
		struct stat pst;
		bool parent = stat(dirname(copy), &pst) == 0 &&
			      S_ISDIR(pst.st_mode);
		free(copy);
		if (parent && mkdir(dest, 0700) == 0) {
			int fd = open(dest, O_RDONLY | O_DIRECTORY |
						    O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0 || fchown(fd, u.uid, u.gid) < 0) {
				*error_r = xasprintf("%s: cannot give it to %s:"
						     " %s", dest, u.name,
						     strerror(errno));
				if (fd >= 0)
					close(fd);
				return -1;
			}
			close(fd);
		}
	}
	if (daemon_user_become(&u, error_r) < 0)
		return -1;
	snprintf(ctl->became, sizeof(ctl->became), "%s", u.name);
	return 0;
}

int loftctl_user_can(struct loftctl *ctl, const char *path, bool write,
		     const char *what)
{
	if (ctl->became[0] == '\0')
		return 0;
	struct stat st;
	int mode = write ? W_OK | X_OK : R_OK;
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			mode |= X_OK | (write ? 0 : R_OK);
		else if (write)
			return 0;
		if (access(path, mode) == 0)
			return 0;
	}
	if (errno != EACCES && errno != EPERM)
		return 0;
	if (write)
		loftctl_fail("%s %s: %s cannot write there (run as root,"
			     " loftctl works as `user = %s` of %s, so that"
			     " what it makes is %s's): chown %s %s, or name"
			     " a directory %s can write (a missing one is"
			     " made for %s)", what, path, ctl->became,
			     ctl->became, ctl->config_path, ctl->became,
			     ctl->became, path, ctl->became, ctl->became);
	else
		loftctl_fail("%s %s: %s cannot read it (run as root,"
			     " loftctl works as `user = %s` of %s): give %s"
			     " read access (setfacl -R -m u:%s:rX %s), or"
			     " copy it where %s can read it", what, path,
			     ctl->became, ctl->became, ctl->config_path,
			     ctl->became, ctl->became, path, ctl->became);
	return -1;
}

static int open_ctl(struct loftctl *ctl, const char *dest)
{
	struct buf errors;
	buf_init(&errors, 0);
	int rc = config_load(ctl->config_path, &ctl->cfg, &errors);
	if (rc == 0)
		rc = auth_settings_from_config(ctl->cfg, &ctl->set, &errors);
	if (rc == 0)
		rc = store_settings_from_config(ctl->cfg, &ctl->store_set,
						&errors);
	/* the node's body cache is loftd's (one process per directory;
	 * check reads the object store itself) */
	ctl->store_set.blob_cache = 0;
	if (rc < 0) {
		/* Report the first error on one line; the rest matter to
		 * `loftd --check`. */
		char *nl = errors.len ? strchr(errors.data, '\n') : NULL;
		if (nl != NULL)
			*nl = '\0';
		loftctl_fail("%s", errors.len ? errors.data : "bad config");
		buf_free(&errors);
		return -1;
	}
	buf_free(&errors);
	char *error = NULL;
	if (become_service_user(ctl, dest, &error) < 0) {
		loftctl_fail("%s", error);
		free(error);
		return -1;
	}
	if (auth_open(&ctl->set, &ctl->auth, &error) < 0) {
		loftctl_fail("%s", error);
		free(error);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct loftctl ctl = {0};
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if ((strcmp(argv[i], "--config") == 0 ||
		     strcmp(argv[i], "-c") == 0) && i + 1 < argc) {
			ctl.config_path = argv[++i];
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			ctl.config_path = argv[i] + 9;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("loftctl %s\n", LOFT_VERSION);
			return 0;
		} else if (strcmp(argv[i], "--help") == 0 ||
			   strcmp(argv[i], "-h") == 0) {
			print_help(stdout);
			return 0;
		} else {
			loftctl_fail("unknown option %s (see loftctl --help)",
				     argv[i]);
			return LOFTCTL_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		print_help(stderr);
		return LOFTCTL_EXIT_USAGE;
	}
	int used = 0;
	const struct loftctl_cmd *cmd = find_cmd(argc - i, argv + i, &used);
	if (cmd == NULL) {
		if (group_exists(argv[i]))
			loftctl_fail("unknown verb '%s %s' (see loftctl --help)",
				     argv[i], i + 1 < argc ? argv[i + 1] : "");
		else
			loftctl_fail("unknown command '%s' (see loftctl --help)",
				     argv[i]);
		return LOFTCTL_EXIT_USAGE;
	}
	if (ctl.config_path == NULL) {
		const char *env = getenv("LOFT_CONFIG");
		ctl.config_path = env != NULL && env[0] != '\0'
					  ? env : LOFTCTL_DEFAULT_CONFIG;
	}
	/* Only warnings and errors: loftctl's output is its answer. */
	log_set_level(LOG_LVL_WARN);
	const char *dest = NULL;
#ifdef LOFTCTL_HAVE_MIGRATE
	dest = loftctl_migrate_dest(cmd, argc - i - used, argv + i + used);
#endif
	if (open_ctl(&ctl, dest) < 0) {
		config_free(&ctl.cfg);
		return LOFTCTL_EXIT_FAIL;
	}
	int rc = cmd->run(&ctl, argc - i - used, argv + i + used);
	loftctl_tell_stop(&ctl);
	if (ctl.store != NULL)
		store_close(&ctl.store);
	auth_close(&ctl.auth);
	config_free(&ctl.cfg);
	if (fflush(stdout) != 0 && rc == 0)
		rc = loftctl_fail("write error: %s", strerror(errno));
	return rc;
}
