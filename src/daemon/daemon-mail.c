/*
 * The mail process: everything that talks to the network. Forked by the
 * parent with the listeners already bound and the TLS pair in memory, it
 * confines itself first (daemon-sandbox.c: the user, Landlock on
 * data_dir/mail and a few read-only system files, seccomp), then opens
 * the store, makes its struct auth a client of the auth process, creates
 * the front-ends, serves the listeners and tells the parent READY.
 *
 * A thread reads the parent's channel: a new auth socket (the auth
 * process was restarted) and RELOAD (log_level, [limits], [auth]
 * cleartext, front-end timeouts, the certificate pair). SIGTERM stops it
 * as loftd always stopped: goodbyes, flush, close.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth-ipc.h"
#include "buf.h"
#include "config.h"
#include "daemon-chan.h"
#include "daemon.h"
#include "log.h"
#include "net.h"
#include "outconn.h"
#include "outhttp.h"

struct mail {
	struct daemon *d;
	int chan;
	struct daemon_services sv;
	struct net *net;
	struct store *store;
	struct auth *auth;
	struct outbound_client *outbound;
	bool extras_open;
	pthread_t chan_thread;
	bool chan_started;
	struct config **cfgs;      /* reloaded configurations (kept) */
	size_t cfg_count;
};

static struct net *volatile mail_net;

static void on_term(int sig)
{
	struct net *net = mail_net;
	if (net != NULL)
		net_stop(net);
}

/* Read-only places a confined mail process still reads: charset modules
 * (iconv loads them on first use), locales (C.UTF-8 case folding), time zones, the CPU count, entropy. */
static const char *const mail_ro_paths[] = {
	"/usr/lib/x86_64-linux-gnu/gconv", "/usr/lib/aarch64-linux-gnu/gconv",
	"/usr/lib/i386-linux-gnu/gconv", "/usr/lib64/gconv", "/usr/lib/gconv",
	"/usr/lib/locale", "/usr/share/zoneinfo", "/etc/localtime",
	"/dev/urandom",
	"/sys/devices/system/cpu", NULL,
};

/* Makes dir (the mail process's own, before the rule that needs it). */
static void own_dir(struct daemon *d, const char *dir)
{
	if (mkdir(dir, 0700) == 0 && d->user.set && geteuid() == 0 &&
	    chown(dir, d->user.uid, d->user.gid) < 0)
		log_warn("loftd", NULL, "chown %s: %s", dir, strerror(errno));
}

static int confine(struct mail *m)
{
	struct daemon *d = m->d;
	struct daemon_sandbox sb;
	memset(&sb, 0, sizeof(sb));
	sb.name = "mail";
	char *mail_dir = xasprintf("%s/mail", d->dc.data_dir);
	char *throttle_dir = xasprintf("%s/throttle", d->dc.data_dir);
	char *cache_dir = xasprintf("%s/blobcache", d->sset.data_dir);
	daemon_sandbox_rw(&sb, mail_dir);
	daemon_sandbox_rw(&sb, throttle_dir);
	const char *gconv = getenv("GCONV_PATH");
	daemon_sandbox_ro(&sb, gconv);
	for (int i = 0; mail_ro_paths[i] != NULL; i++)
		daemon_sandbox_ro(&sb, mail_ro_paths[i]);
	/* ... and (daemon_extras_sandbox sets tcp_confined) no TCP
	 * connection of its own (the outbound process makes them, and its
	 * HTTP requests) but to the resolver's ports (libunbound's TCP
	 * queries), no TCP listener of its own (the parent binds them). */
	daemon_extras_sandbox(d, &sb);
	/* [store] backend = postgres (docs/scale-out.md): the bodies in
	 * blob_dir and the database's TCP ports */
	bool pg = d->sset.backend == STORE_BACKEND_POSTGRES ||
		  d->sset.postgres != NULL;   /* both (loftctl migrate-store) */
	if (pg) {
		/* made here, before the rule that needs it; blobs = s3
		 * without blob_dir spools in data_dir/spool */
		static char spool[4096];
		const char *dir = d->sset.blob_dir;
		if (dir == NULL) {
			snprintf(spool, sizeof(spool), "%s/spool",
				 d->sset.data_dir);
			dir = spool;
		}
		own_dir(d, dir);
		daemon_sandbox_rw(&sb, dir);
		/* blobs = s3: the node's copies of bodies */
		if (d->sset.blobs == STORE_BLOBS_S3 && d->sset.blob_cache > 0) {
			own_dir(d, cache_dir);
			daemon_sandbox_rw(&sb, cache_dir);
		}
		/* blobs = s3: the secret key is read when the store opens */
		if (d->sset.blobs == STORE_BLOBS_S3)
			daemon_sandbox_ro(&sb, d->sset.s3_secret_key_file);
		uint16_t ports[4];
		struct store_settings ps = d->sset;
		ps.backend = STORE_BACKEND_POSTGRES;   /* both: its side */
		size_t np = store_backend_ports(&ps, ports, 4);
		for (size_t i = 0; i < np; i++) {
			if (sb.tcp_port_count < sizeof(sb.tcp_connect_ports) /
						sizeof(*sb.tcp_connect_ports))
				sb.tcp_connect_ports[sb.tcp_port_count++] = ports[i];
		}
	}
	for (size_t i = 0; i < d->listener_count; i++) {
		struct daemon_frontend *fe = d->listeners[i].fe;
		bool first = true;
		for (size_t k = 0; k < i; k++)
			if (d->listeners[k].fe == fe)
				first = false;
		if (first && fe->sandbox != NULL)
			fe->sandbox(d, &sb);
	}
	/* no chroot: its trees are not under one directory */
	sb.best_effort = d->dc.sandbox_best_effort;
	tzset();
	char *err = NULL;
	bool chrooted;
	int rc = daemon_sandbox_enter(&sb, &d->user, &chrooted, &err);
	if (rc < 0) {
		log_error("loftd", NULL, "mail process: %s", err);
		free(err);
	}
	free(mail_dir);
	free(throttle_dir);
	free(cache_dir);
	return rc;
}

/* ---- reload --------------------------------------------------------- */

static void apply_reload(struct mail *m, int fd)
{
	struct daemon *d = m->d;
	char *text, *cert, *key;
	size_t text_len, clen, klen;
	int status = 0;
	if (daemon_reload_unpack(fd, &text, &text_len, &cert, &clen, &key,
				 &klen) < 0) {
		log_error("loftd", NULL, "mail process: unreadable reload");
		daemon_chan_send(m->chan, DAEMON_CHAN_RELOADED, 1, -1);
		return;
	}
	struct buf errors, warnings;
	buf_init(&errors, 0);
	buf_init(&warnings, 0);
	struct config *cfg = NULL;
	struct daemon_config dc;
	struct auth_settings aset;
	memset(&dc, 0, sizeof(dc));
	/* The parent checked it; parsing again gives this process its own
	 * copy for the settings to point into. */
	if (config_parse(d->config_path, text, text_len, &cfg, &errors) < 0 ||
	    daemon_config_read(cfg, &dc, &errors) < 0 ||
	    auth_settings_from_config(cfg, &aset, &errors) < 0) {
		daemon_log_lines(LOG_LVL_ERROR, "mail process: reload: ",
				 errors.data);
		status = 1;
		goto out;
	}
	log_set_level(dc.log_level);
	net_reload(m->net, &dc.net);
	auth_reload(m->auth, &aset);
	if (cert != NULL && key != NULL) {
		char *err = NULL;
		if (net_tls_set(m->net, cert, clen, key, klen, dc.net.tls_cert,
				dc.net.tls_key, &err) < 0) {
			log_error("loftd", NULL, "reload: TLS: %s: keeping the "
				  "current certificate and key", err);
			free(err);
			status = 1;
		} else {
			log_info("loftd", NULL, "reload: TLS certificate %s "
				 "loaded for new connections", dc.net.tls_cert);
		}
	}
	for (struct daemon_frontend *fe = d->frontends; fe->name; fe++)
		if (fe->server != NULL && fe->reload != NULL)
			fe->reload(fe->server, cfg);
	if (daemon_extras_reload(cfg) < 0)
		status = 1;
	m->cfgs = xrealloc(m->cfgs, (m->cfg_count + 1) * sizeof(*m->cfgs));
	m->cfgs[m->cfg_count++] = cfg;
	cfg = NULL;
out:
	daemon_config_deinit(&dc);
	config_free(&cfg);
	buf_free(&errors);
	buf_free(&warnings);
	free(text);
	free(cert);
	if (key != NULL)
		OPENSSL_cleanse(key, klen);
	free(key);
	daemon_chan_send(m->chan, DAEMON_CHAN_RELOADED, (uint32_t)status, -1);
}

static void *chan_main(void *ctx)
{
	struct mail *m = ctx;
	for (;;) {
		struct daemon_chan_msg msg;
		int rc = daemon_chan_recv(m->chan, &msg);
		if (rc <= 0) {
			if (rc < 0 && errno == EINTR)
				continue;
			break;     /* the parent is gone, or we are stopping */
		}
		if (msg.type == DAEMON_CHAN_AUTH_FD && msg.fd >= 0) {
			log_info("loftd", NULL, "connected to the new auth "
				 "process");
			auth_client_set_fd(m->auth, msg.fd);
		} else if (msg.type == DAEMON_CHAN_OUTBOUND_FD && msg.fd >= 0 &&
			   m->outbound != NULL) {
			log_info("loftd", NULL, "connected to the new outbound "
				 "process");
			outbound_client_set_fd(m->outbound, msg.fd);
		} else if (msg.type == DAEMON_CHAN_RELOAD && msg.fd >= 0) {
			apply_reload(m, msg.fd);
			close(msg.fd);
		} else if (msg.fd >= 0) {
			close(msg.fd);
		}
	}
	return NULL;
}

/* ---- start and run -------------------------------------------------- */

static int start_frontends(struct mail *m)
{
	struct daemon *d = m->d;
	struct buf errors;
	buf_init(&errors, 0);
	const struct daemon_services sv = m->sv;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < d->listener_count; i++) {
		struct daemon_frontend *fe = d->listeners[i].fe;
		if (fe->server != NULL)
			continue;
		fe->server = fe->create(&sv, &errors);
		if (fe->server == NULL) {
			fputs(errors.data ? errors.data : "", stderr);
			rc = -1;
		}
	}
	for (size_t i = 0; rc == 0 && i < d->listener_count; i++) {
		struct daemon_listener *l = &d->listeners[i];
		const char *err;
		if (net_listen_fd(m->net, l->fd, l->addr, l->implicit_tls,
				  l->fe->proto, l->fe->server, &err) < 0) {
			fprintf(stderr, "%s:%d: %s\n", d->cfg->path, l->line, err);
			rc = -1;
		} else {
			l->fd = -1;       /* the net's now */
		}
	}
	buf_free(&errors);
	return rc;
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	/* The parent handles ^C and SIGHUP and tells this process. */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
}

static void mail_stop(struct mail *m)
{
	mail_net = NULL;
	if (m->chan_started) {
		shutdown(m->chan, SHUT_RDWR);
		pthread_join(m->chan_thread, NULL);
	}
	/* Logins waiting for a hash are dropped, never waited for. */
	auth_shutdown(m->auth);
	/* Connections (and their sessions) go before the servers they use. */
	net_destroy(&m->net);
	for (struct daemon_frontend *fe = m->d->frontends; fe->name; fe++) {
		if (fe->server != NULL)
			fe->destroy(fe->server);
		fe->server = NULL;
	}
	if (m->extras_open)
		daemon_extras_close(&m->sv);
	outconn_set_broker(NULL, NULL);
	outhttp_set_broker(NULL, NULL);
	outbound_client_destroy(&m->outbound);
	store_close(&m->store);
	auth_close(&m->auth);
	for (size_t i = 0; i < m->cfg_count; i++)
		config_free(&m->cfgs[i]);
	free(m->cfgs);
	close(m->chan);
}

int daemon_mail_main(struct daemon *d, int chan, int auth_fd)
{
	struct mail m;
	memset(&m, 0, sizeof(m));
	m.d = d;
	m.chan = chan;
	install_signals();
	char *err = NULL;
	struct store_settings sset = d->sset;
	struct store_error serr = {0};
	int rc = 1;
	if (confine(&m) < 0)
		goto out;
	/* TCP connections and HTTP requests are the outbound process's
	 * (daemon-outbound.c) */
	if (d->outbound_fd >= 0) {
		m.outbound = outbound_client_create(d->outbound_fd);
		d->outbound_fd = -1;
		outconn_set_broker(outbound_client_connect, m.outbound);
		outhttp_set_broker(outbound_client_http, m.outbound);
	}
	/* The login gate and its throttle run here (data_dir/throttle/). */
	struct auth_settings aset = d->aset;
	aset.throttle_daemon = true;
	if (auth_client_open(&aset, auth_fd, &m.auth, &err) < 0) {
		log_error("loftd", NULL, "mail process: %s", err);
		free(err);
		goto out;
	}
	auth_fd = -1;
	sset.limits = auth_store_limits;
	sset.limits_ctx = m.auth;
	sset.acl_hint = auth_acl_hint;
	sset.acl_hint_ctx = m.auth;
	if (store_open(&sset, &m.store, &serr) < 0) {
		log_error("loftd", NULL, "cannot open the store: %s", serr.msg);
		goto out;
	}
	struct net_settings nset = d->dc.net;
	nset.tls_cert = nset.tls_key = NULL;
	if (net_create(&nset, &m.net, &err) < 0) {
		log_error("loftd", NULL, "%s", err ? err : "cannot start");
		free(err);
		goto out;
	}
	/* Addresses banned for failed logins are refused at connect. */
	net_set_admit(m.net, auth_may_connect, m.auth);
	if (d->cert_pem != NULL &&
	    net_tls_set(m.net, d->cert_pem, d->cert_len, d->key_pem,
			d->key_len, d->dc.net.tls_cert, d->dc.net.tls_key,
			&err) < 0) {
		log_error("loftd", NULL, "TLS: %s", err);
		free(err);
		goto out;
	}
	net_tls_text_free(&d->cert_pem, d->cert_len);
	net_tls_text_free(&d->key_pem, d->key_len);
	m.sv = (struct daemon_services){.cfg = d->cfg, .dc = &d->dc,
					.store = m.store, .auth = m.auth,
					.net = m.net, .outbound = m.outbound};
	m.extras_open = true;
	if (daemon_extras_open(&m.sv) < 0 || start_frontends(&m) < 0)
		goto out;
	if (pthread_create(&m.chan_thread, NULL, chan_main, &m) != 0) {
		log_error("loftd", NULL, "cannot start the channel thread");
		goto out;
	}
	m.chan_started = true;
	mail_net = m.net;
	store_start_background(m.store);
	if (daemon_extras_start(&m.sv) < 0)
		goto out;
	struct store_retention_source retention = auth_retention_source(m.auth);
	store_retention_start(m.store, &retention, sset.retention_interval);
	daemon_chan_send(chan, DAEMON_CHAN_READY, 0, -1);
	net_run(m.net);
	log_info("loftd", NULL, "mail process shutting down");
	rc = 0;
out:
	net_tls_text_free(&d->cert_pem, d->cert_len);
	net_tls_text_free(&d->key_pem, d->key_len);
	if (auth_fd >= 0)
		close(auth_fd);
	if (d->outbound_fd >= 0)
		close(d->outbound_fd);
	d->outbound_fd = -1;
	mail_stop(&m);
	return rc;
}
