/*
 * The auth process: the only one that opens accounts.db, so the password
 * hashes and SCRAM keys live nowhere else. Confined like the mail process
 * but to data_dir (it writes accounts.db when it re-hashes an imported
 * password), it serves the mail process's requests over their socketpair
 * (src/auth/auth-server.c) until that closes or SIGTERM, and takes RELOAD
 * ([auth], [policy], log_level) from the parent.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth-ipc.h"
#include "buf.h"
#include "config.h"
#include "daemon-chan.h"
#include "daemon.h"
#include "log.h"
#include "net.h"
#include "store.h"
#ifdef LOFT_HAVE_MAILAUTH
#include "daemon-dkim.h"
#endif

static struct auth_server *volatile auth_srv;

static void on_term(int sig)
{
	struct auth_server *srv = auth_srv;
	if (srv != NULL)
		auth_server_stop(srv);
}

struct auth_proc {
	struct daemon *d;
	int chan;
	struct auth_server *srv;
	struct config **cfgs;
	size_t cfg_count;
};

static void apply_reload(struct auth_proc *a, int fd)
{
	char *text, *cert, *key;
	size_t text_len, clen, klen;
	int status = 1;
	if (daemon_reload_unpack(fd, &text, &text_len, &cert, &clen, &key,
				 &klen) < 0) {
		log_error("loftd", NULL, "auth process: unreadable reload");
		daemon_chan_send(a->chan, DAEMON_CHAN_RELOADED, 1, -1);
		return;
	}
	/* The certificate pair is none of this process's business. */
	free(cert);
	if (key != NULL)
		OPENSSL_cleanse(key, klen);
	free(key);
	struct buf errors, warnings;
	buf_init(&errors, 0);
	buf_init(&warnings, 0);
	struct config *cfg = NULL;
	struct daemon_config dc;
	struct auth_settings aset;
	memset(&dc, 0, sizeof(dc));
	if (config_parse(a->d->config_path, text, text_len, &cfg, &errors) == 0 &&
	    daemon_config_read(cfg, &dc, &errors) == 0 &&
	    auth_settings_from_config(cfg, &aset, &errors) == 0) {
		log_set_level(dc.log_level);
		auth_server_reload(a->srv, &aset);
		a->cfgs = xrealloc(a->cfgs, (a->cfg_count + 1) * sizeof(*a->cfgs));
		a->cfgs[a->cfg_count++] = cfg;
		cfg = NULL;
		status = 0;
	} else {
		daemon_log_lines(LOG_LVL_ERROR, "auth process: reload: ",
				 errors.data);
	}
	daemon_config_deinit(&dc);
	config_free(&cfg);
	buf_free(&errors);
	buf_free(&warnings);
	free(text);
	daemon_chan_send(a->chan, DAEMON_CHAN_RELOADED, (uint32_t)status, -1);
}

static void *chan_main(void *ctx)
{
	struct auth_proc *a = ctx;
	for (;;) {
		struct daemon_chan_msg msg;
		int rc = daemon_chan_recv(a->chan, &msg);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		if (msg.type == DAEMON_CHAN_RELOAD && msg.fd >= 0)
			apply_reload(a, msg.fd);
		if (msg.fd >= 0)
			close(msg.fd);
	}
	/* The parent is gone or stopping us: so are we. */
	auth_server_stop(a->srv);
	return NULL;
}

#ifdef LOFT_HAVE_MAILAUTH
/* DKIM keys shared by the nodes (daemon-dkim.h): this node's copies in
 * data_dir/dkim made like the rows every few seconds, so a key added or
 * deleted on any node signs (or stops) here within that time. */
struct dkim_mirror {
	struct auth *auth;
	char *dir;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop;
	char *last_error;           /* said once, until it changes */
};

static void *dkim_mirror_main(void *arg)
{
	struct dkim_mirror *m = arg;
	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		pthread_mutex_unlock(&m->mu);
		char *err = NULL;
		int n = daemon_dkim_mirror(m->auth, m->dir, &err);
		if (n < 0 && (m->last_error == NULL ||
			      strcmp(m->last_error, err) != 0)) {
			log_error("loftd", NULL, "DKIM keys of the database:"
				  " %s", err);
			free(m->last_error);
			m->last_error = err;
			err = NULL;
		} else if (n >= 0) {
			if (n > 0)
				log_info("loftd", NULL, "DKIM keys: %d copies"
					 " made or removed in %s as the"
					 " database says", n, m->dir);
			free(m->last_error);
			m->last_error = NULL;
		}
		free(err);
		pthread_mutex_lock(&m->mu);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += DAEMON_DKIM_MIRROR_SECONDS;
		while (!m->stop &&
		       pthread_cond_timedwait(&m->cond, &m->mu, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}
#endif

static int confine(struct daemon *d, bool *chrooted_r)
{
	struct daemon_sandbox sb;
	memset(&sb, 0, sizeof(sb));
	sb.name = "auth";
	daemon_sandbox_rw(&sb, d->dc.data_dir);
	daemon_sandbox_ro(&sb, "/usr/share/zoneinfo");
	daemon_sandbox_ro(&sb, "/etc/localtime");
	daemon_sandbox_ro(&sb, "/dev/urandom");
	daemon_sandbox_ro(&sb, "/sys/devices/system/cpu");
	sb.chroot_dir = d->dc.data_dir;   /* all it reads */
	sb.best_effort = d->dc.sandbox_best_effort;
	/* TCP: none, or PostgreSQL's ports when the accounts are there
	 * ([auth] postgres; docs/scale-out.md) */
	sb.tcp_confined = true;
	if (d->aset.postgres != NULL) {
		struct store_settings pg = {
			.backend = STORE_BACKEND_POSTGRES,
			.postgres = d->aset.postgres,
		};
		sb.tcp_port_count = store_backend_ports(
			&pg, sb.tcp_connect_ports,
			sizeof(sb.tcp_connect_ports) /
			sizeof(*sb.tcp_connect_ports));
		/* a chroot into data_dir would hide a socket directory */
		sb.chroot_dir = NULL;
		/* libpq: host names, TLS to the server */
		static const char *const ro[] = {
			"/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf",
			"/etc/ssl", "/usr/lib/ssl", NULL,
		};
		for (int i = 0; ro[i] != NULL; i++)
			daemon_sandbox_ro(&sb, ro[i]);
	}
	tzset();
	char *err = NULL;
	if (daemon_sandbox_enter(&sb, &d->user, chrooted_r, &err) < 0) {
		log_error("loftd", NULL, "auth process: %s", err);
		free(err);
		return -1;
	}
	return 0;
}

int daemon_auth_main(struct daemon *d, int chan, int mail_fd)
{
	/* Forked from a parent that held the TLS key: not ours to keep. */
	net_tls_text_free(&d->cert_pem, d->cert_len);
	net_tls_text_free(&d->key_pem, d->key_len);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);

	struct auth_proc a = {.d = d, .chan = chan};
	struct auth *auth = NULL;
	pthread_t th;
	bool th_started = false;
	char *err = NULL;
	int rc = 1;
	bool chrooted;
	if (confine(d, &chrooted) < 0)
		goto out;
	struct auth_settings aset = d->aset;
	aset.data_dir = chrooted ? "/" : d->dc.data_dir;
	if (auth_open(&aset, &auth, &err) < 0) {
		log_error("loftd", NULL, "cannot open accounts: %s",
			  err ? err : "unknown error");
		free(err);
		goto out;
	}
	unsigned threads = d->dc.net.worker_threads ? d->dc.net.worker_threads
						    : 8;
	a.srv = auth_server_create(auth, mail_fd, threads, &err);
	if (a.srv == NULL) {
		log_error("loftd", NULL, "auth process: %s", err);
		free(err);
		goto out;
	}
	auth_srv = a.srv;
	if (pthread_create(&th, NULL, chan_main, &a) == 0)
		th_started = true;
#ifdef LOFT_HAVE_MAILAUTH
	struct dkim_mirror dm = {.auth = auth};
	pthread_t dm_th;
	bool dm_started = false;
	if (auth_dkim_shared(auth)) {
		dm.dir = xasprintf("%s/dkim", aset.data_dir);
		pthread_mutex_init(&dm.mu, NULL);
		pthread_cond_init(&dm.cond, NULL);
		dm_started = pthread_create(&dm_th, NULL, dkim_mirror_main,
					    &dm) == 0;
	}
#endif
	rc = auth_server_run(a.srv) < 0 ? 1 : 0;
#ifdef LOFT_HAVE_MAILAUTH
	if (dm_started) {
		pthread_mutex_lock(&dm.mu);
		dm.stop = true;
		pthread_cond_signal(&dm.cond);
		pthread_mutex_unlock(&dm.mu);
		pthread_join(dm_th, NULL);
	}
	free(dm.dir);
	free(dm.last_error);
#endif
out:
	auth_srv = NULL;
	if (th_started) {
		shutdown(chan, SHUT_RDWR);
		pthread_join(th, NULL);
	}
	auth_server_destroy(&a.srv);
	auth_close(&auth);
	for (size_t i = 0; i < a.cfg_count; i++)
		config_free(&a.cfgs[i]);
	free(a.cfgs);
	close(mail_fd);
	close(chan);
	return rc;
}
