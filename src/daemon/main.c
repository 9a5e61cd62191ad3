/*
 * loftd: reads the configuration, opens the accounts (src/auth) and the
 * store (src/store), creates each front-end that is built in, listens on
 * every configured address, starts the store's background work and runs
 * the I/O threads until SIGTERM or SIGINT, then shuts down cleanly.
 *
 *   loftd --config FILE            run in the foreground, log to stderr
 *   loftd --config FILE --check    validate: exit 0 if loftd would start
 *                                  (warnings on stderr), 1 on errors, each
 *                                  printed as FILE:LINE: message
 *   loftd --version
 *
 * loftctl reaches the running loftd over the control socket (src/control,
 * control-verbs.c), served beside the sessions.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "control-verbs.h"
#include "control.h"
#include "daemon-config.h"
#include "log.h"
#include "net.h"
#include "store.h"
#ifdef LOFT_HAVE_IMAP
#include "imap.h"
#endif
#ifdef LOFT_HAVE_POP3
#include "pop3.h"
#endif
#ifdef LOFT_HAVE_LMTP
#include "lmtp.h"
#endif
#ifdef LOFT_HAVE_SMTP
#include "smtp.h"
#endif
#ifdef LOFT_HAVE_MANAGESIEVE
#include "managesieve.h"
#endif
#ifdef LOFT_HAVE_QUEUE
#include "delivery.h"
#include "delivery-sieve.h"
#include "dns.h"
#include "queue.h"
#endif
#ifdef LOFT_HAVE_HTTP
#include "http.h"
#endif
#ifdef LOFT_HAVE_JMAP
#include "jmap.h"
#endif
#ifdef LOFT_HAVE_MAILAUTH
#include "mailauth.h"
#endif

/* One front-end: its server serves a plain and (optionally) an implicit
 * TLS protocol, e.g. imap + imaps share one imap_server. */
struct frontend {
	const char *name;
	enum daemon_proto plain;
	int tls;                       /* enum daemon_proto, or -1 */
	const struct net_proto *proto;
	void *(*create)(const struct config *cfg, struct store *store,
			struct auth *auth, struct buf *errors);
	void (*destroy)(void *server);
	void *server;
	/* optional: the outbound queue, for front-ends that send */
	void (*set_queue)(void *server, void *queue);
};

#ifdef LOFT_HAVE_IMAP
static void *imap_create(const struct config *c, struct store *s,
			 struct auth *a, struct buf *e)
{
	return imap_server_create(c, s, a, e);
}
static void imap_destroy(void *server)
{
	struct imap_server *p = server;
	imap_server_destroy(&p);
}
#endif
#ifdef LOFT_HAVE_POP3
static void *pop3_create(const struct config *c, struct store *s,
			 struct auth *a, struct buf *e)
{
	return pop3_server_create(c, s, a, e);
}
static void pop3_destroy(void *server)
{
	struct pop3_server *p = server;
	pop3_server_destroy(&p);
}
#endif
#ifdef LOFT_HAVE_LMTP
static void *lmtp_create(const struct config *c, struct store *s,
			 struct auth *a, struct buf *e)
{
	return lmtp_server_create(c, s, a, e);
}
static void lmtp_destroy(void *server)
{
	struct lmtp_server *p = server;
	lmtp_server_destroy(&p);
}
#endif

#ifdef LOFT_HAVE_HTTP
/* The listeners as configured, for the HTTP server's client set-up
 * (autoconfig, Autodiscover, .mobileconfig advertise them). */
static const struct daemon_config *listeners_dc;
#ifdef LOFT_HAVE_JMAP
/* JMAP lives on the [http] server: made and dropped with it. */
static struct jmap *the_jmap;
#endif

#ifdef LOFT_HAVE_SMTP
/* GET /.well-known/mta-sts.txt: our MTA-STS policy (RFC 8461 3.3). */
static void mtasts_policy(struct http_request *req,
			  struct http_response *resp, void *ctx)
{
	(void)req;
	http_response_content_type(resp, "text/plain");
	http_response_set_header(resp, "Cache-Control", "max-age=3600");
	http_response_send(resp, ctx, strlen(ctx));
}
#endif

static void *http_create(const struct config *c, struct store *s,
			 struct auth *a, struct buf *e)
{
	struct http_service sv[64];
	size_t n = 0;
	for (int p = 0; listeners_dc != NULL && p < DAEMON_PROTO_COUNT; p++)
		for (size_t i = 0; i < listeners_dc->listen[p].count &&
		     n < sizeof(sv) / sizeof(sv[0]); i++) {
			sv[n].proto = daemon_proto_names[p];
			sv[n].addr = listeners_dc->listen[p].addrs[i];
			n++;
		}
	struct http_server *server = http_server_create(c, s, a, sv, n, e);
	/* Modules with HTTP routes (jmap) add them here. */
#ifdef LOFT_HAVE_SMTP
	static char mtasts[600];
	static const struct http_route mtasts_route = {
		.method = "GET", .prefix = "/.well-known/mta-sts.txt",
		.flags = HTTP_ROUTE_EXACT, .handle = mtasts_policy,
	};
	if (server != NULL &&
	    (smtp_mtasts_policy(c, mtasts, sizeof(mtasts), e) < 0 ||
	     http_route_add(server, &mtasts_route, mtasts) < 0)) {
		http_server_destroy(&server);
		return NULL;
	}
#endif
#ifdef LOFT_HAVE_JMAP
	if (server != NULL) {
		struct jmap *j = jmap_create(c, s, a, e);
		if (j == NULL ||
		    (s != NULL && jmap_http_register(j, server, e) < 0)) {
			jmap_destroy(&j);
			http_server_destroy(&server);
			return NULL;
		}
		if (s == NULL)
			jmap_destroy(&j);   /* --check: the settings only */
		else
			the_jmap = j;
	}
#endif
	return server;
}
static void *metrics_create(const struct config *c, struct store *s,
			    struct auth *a, struct buf *e)
{
	return http_metrics_server_create(c, s, a, e);
}
static void http_destroy(void *server)
{
	struct http_server *p = server;
	http_server_destroy(&p);
}
/* The [http] server: its routes' module (jmap) goes after it. */
static void http_main_destroy(void *server)
{
	http_destroy(server);
#ifdef LOFT_HAVE_JMAP
	jmap_destroy(&the_jmap);
#endif
}
static void http_set_queue(void *server, void *queue)
{
	(void)server;
#ifdef LOFT_HAVE_JMAP
	jmap_set_queue(the_jmap, queue);
	/* with the queue, Sieve is installed (mail_out_open): deliveries
	 * answer with the VacationResponse */
	jmap_set_vacation(the_jmap, true);
#else
	(void)queue;
#endif
}
#endif

#ifdef LOFT_HAVE_SMTP
static void *smtp_mx_create(const struct config *c, struct store *s,
			    struct auth *a, struct buf *e)
{
	return smtp_server_create(c, SMTP_MODE_MX, s, a, e);
}
static void *smtp_sub_create(const struct config *c, struct store *s,
			     struct auth *a, struct buf *e)
{
	return smtp_server_create(c, SMTP_MODE_SUBMISSION, s, a, e);
}
static void smtp_destroy(void *server)
{
	struct smtp_server *p = server;
	smtp_server_destroy(&p);
}
static void smtp_set_queue(void *server, void *queue)
{
	smtp_server_set_queue(server, queue);
}
#endif

#ifdef LOFT_HAVE_MANAGESIEVE
static void *managesieve_create(const struct config *c, struct store *s,
				struct auth *a, struct buf *e)
{
	return managesieve_server_create(c, s, a, e);
}
static void managesieve_destroy(void *server)
{
	struct managesieve_server *p = server;
	managesieve_server_destroy(&p);
}
#endif

static struct frontend frontends[] = {
#ifdef LOFT_HAVE_IMAP
	{"imap", DAEMON_IMAP, DAEMON_IMAPS, &imap_proto, imap_create,
	 imap_destroy, NULL, NULL},
#endif
#ifdef LOFT_HAVE_POP3
	{"pop3", DAEMON_POP3, DAEMON_POP3S, &pop3_proto, pop3_create,
	 pop3_destroy, NULL, NULL},
#endif
#ifdef LOFT_HAVE_LMTP
	{"lmtp", DAEMON_LMTP, -1, &lmtp_proto, lmtp_create, lmtp_destroy, NULL, NULL},
#endif
#ifdef LOFT_HAVE_HTTP
	{"http", DAEMON_HTTP, DAEMON_HTTPS, &http_proto, http_create,
	 http_main_destroy, NULL, http_set_queue},
	{"metrics", DAEMON_METRICS, -1, &http_proto, metrics_create,
	 http_destroy, NULL, NULL},
#endif
#ifdef LOFT_HAVE_SMTP
	{"smtp", DAEMON_SMTP, -1, &smtp_mx_proto, smtp_mx_create, smtp_destroy,
	 NULL, smtp_set_queue},
	{"submission", DAEMON_SUBMISSION, DAEMON_SUBMISSIONS,
	 &smtp_submission_proto, smtp_sub_create, smtp_destroy, NULL,
	 smtp_set_queue},
#endif
#ifdef LOFT_HAVE_MANAGESIEVE
	{"managesieve", DAEMON_MANAGESIEVE, -1, &managesieve_proto,
	 managesieve_create, managesieve_destroy, NULL, NULL},
#endif
	{NULL, 0, -1, NULL, NULL, NULL, NULL, NULL},
};

static struct net *the_net;

static void on_stop_signal(int sig)
{
	if (the_net != NULL)
		net_stop(the_net);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: loftd --config FILE [--check]\n"
		   "       loftd --version\n");
}

static bool frontend_wanted(const struct frontend *fe,
			    const struct config *cfg)
{
	return config_has_section(cfg, daemon_proto_names[fe->plain]) ||
	       (fe->tls >= 0 && config_has_section(cfg, daemon_proto_names[fe->tls]));
}

/* A protocol section whose front-end is not built into this loftd. */
static void warn_unbuilt(const struct config *cfg, struct buf *warnings)
{
	for (int p = 0; p < DAEMON_PROTO_COUNT; p++) {
		bool built = false;
		for (const struct frontend *fe = frontends; fe->name; fe++)
			if ((int)fe->plain == p || fe->tls == p)
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

#ifdef LOFT_HAVE_QUEUE
/* Mail out: the resolver and the outbound queue (issue 13). */
struct mail_out {
	struct dns_settings dset;
	struct queue_settings qset;
	struct dns *dns;
	struct queue *queue;
	struct auth *auth;
	struct delivery *delivery;  /* the queue's local recipients */
#ifdef LOFT_HAVE_MAILAUTH
	struct dkim_signer *signer; /* data_dir/dkim */
#endif
};

static int mail_out_check(const struct config *cfg, struct buf *errors)
{
	struct dns_settings dset;
	struct queue_settings qset;
	int rc = 0;

	if (dns_settings_from_config(cfg, &dset, errors) < 0)
		rc = -1;
	dns_settings_deinit(&dset);
	if (queue_settings_from_config(cfg, &qset, errors) < 0)
		rc = -1;
	/* [sieve]: the admin's before/after scripts compile
	 * (FILE:LINE:COLUMN: message) */
	struct delivery_sieve *ds = delivery_sieve_load(cfg, errors);
	if (ds == NULL)
		rc = -1;
	delivery_sieve_unref(&ds);
#ifdef LOFT_HAVE_MAILAUTH
	/* every DKIM key loads: a broken one would stop signing */
	char *dir = xasprintf("%s/dkim", qset.data_dir);
	if (dkim_keys_check(dir, errors) < 0)
		rc = -1;
	free(dir);
#endif
	return rc;
}

#ifdef LOFT_HAVE_MAILAUTH
static int dkim_sign_hook(void *ctx, const void *data, size_t len,
			  struct buf *out)
{
	struct mail_out *mo = ctx;
	return dkim_signer_sign(mo->signer, data, len, out);
}
#endif

static bool local_domain(void *ctx, const char *domain)
{
	struct mail_out *mo = ctx;
	return auth_domain_exists(mo->auth, domain);
}

/* The queue stores mail for local recipients (submissions, DSNs, local
 * retries) through the same delivery module as LMTP and SMTP. */
static void local_deliver(void *ctx, const char *sender,
			  const struct queue_rcpt *rcpts, size_t count,
			  const void *data, size_t len,
			  struct queue_rcpt_result *results)
{
	struct mail_out *mo = ctx;
	const char **addrs = xcalloc(count, sizeof(char *));
	struct delivery_reply *rep = xcalloc(count, sizeof(*rep));
	struct delivery_envelope env = {
		.sender = sender, .helo = mo->qset.hostname, .with = "LOCAL",
	};

	for (size_t i = 0; i < count; i++)
		addrs[i] = rcpts[i].address;
	delivery_message(mo->delivery, &env, addrs, count, data, len, rep);
	for (size_t i = 0; i < count; i++) {
		results[i].code = rep[i].code;
		snprintf(results[i].enhanced, sizeof(results[i].enhanced), "%s",
			 rep[i].status ? rep[i].status : "");
		/* The queue keeps 255 bytes of reply text; a longer
		 * delivery reply is cut there. */
		snprintf(results[i].text, sizeof(results[i].text), "%.255s",
			 rep[i].text);
	}
	free(addrs);
	free(rep);
}

static int mail_out_open(struct mail_out *mo, const struct config *cfg,
			 struct auth *auth, struct store *store)
{
	struct buf errors;
	char *msg = NULL;
	struct queue_error qerr = {0};

	buf_init(&errors, 0);
	dns_settings_from_config(cfg, &mo->dset, &errors);
	queue_settings_from_config(cfg, &mo->qset, &errors);
	buf_free(&errors);
	if (dns_create(&mo->dset, &mo->dns, &msg) < 0) {
		log_error("loftd", NULL, "%s", msg);
		free(msg);
		return -1;
	}
	mo->qset.dns = mo->dns;
	if (queue_open(&mo->qset, &mo->queue, &qerr) < 0) {
		log_error("loftd", NULL, "cannot open the queue: %s", qerr.msg);
		return -1;
	}
	mo->auth = auth;
	mo->delivery = delivery_create(store, auth, mo->qset.hostname);
	struct queue_hooks hooks = {
		.is_local = local_domain, .deliver = local_deliver, .ctx = mo,
	};
#ifdef LOFT_HAVE_MAILAUTH
	char *dir = xasprintf("%s/dkim", mo->qset.data_dir);
	mo->signer = dkim_signer_create(dir);
	free(dir);
	hooks.sign = dkim_sign_hook;
#endif
	queue_set_hooks(mo->queue, &hooks);
	/* Sieve for every delivery of the process; replies through the
	 * queue */
	struct buf serr;
	buf_init(&serr, 0);
	struct delivery_sieve *ds = delivery_sieve_load(cfg, &serr);
	if (ds == NULL) {
		log_error("loftd", NULL, "[sieve]: %s", serr.data ? serr.data : "");
		buf_free(&serr);
		return -1;
	}
	buf_free(&serr);
	delivery_sieve_install(ds, mo->queue);
	delivery_sieve_unref(&ds);
	return 0;
}

static void mail_out_close(struct mail_out *mo)
{
	delivery_sieve_install(NULL, NULL);
	queue_close(&mo->queue);
	delivery_destroy(&mo->delivery);
#ifdef LOFT_HAVE_MAILAUTH
	dkim_signer_destroy(&mo->signer);
#endif
	dns_destroy(&mo->dns);
	dns_settings_deinit(&mo->dset);
}
#endif

/* Everything --check verifies. Front-ends are created without store and
 * auth only in check mode; in run mode main creates them for real. */
static int check_all(const struct config *cfg, struct daemon_config *dc,
		     struct auth_settings *aset, struct store_settings *sset,
		     bool check_frontends, struct buf *errors,
		     struct buf *warnings)
{
	int rc = daemon_config_check(cfg, dc, errors, warnings);
	if (auth_settings_from_config(cfg, aset, errors) < 0)
		rc = -1;
	if (store_settings_from_config(cfg, sset, errors) < 0)
		rc = -1;
#ifdef LOFT_HAVE_QUEUE
	if (mail_out_check(cfg, errors) < 0)
		rc = -1;
#endif
	warn_unbuilt(cfg, warnings);
#ifdef LOFT_HAVE_HTTP
	listeners_dc = dc;
#endif
	if (!check_frontends)
		return rc;
	for (struct frontend *fe = frontends; fe->name; fe++) {
		if (!frontend_wanted(fe, cfg))
			continue;
		void *server = fe->create(cfg, NULL, NULL, errors);
		if (server == NULL)
			rc = -1;
		else
			fe->destroy(server);
	}
	return rc;
}

static int mkdir_p(const char *path)
{
	char *p = xstrdup(path);
	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			free(p);
			return -1;
		}
		*s = '/';
	}
	int rc = mkdir(p, 0750);
	free(p);
	return rc < 0 && errno != EEXIST ? -1 : 0;
}

static int start_listeners(struct net *net, struct daemon_config *dc,
			   const struct config *cfg)
{
	for (struct frontend *fe = frontends; fe->name; fe++) {
		if (fe->server == NULL)
			continue;
		for (int k = 0; k < 2; k++) {
			int p = k == 0 ? (int)fe->plain : fe->tls;
			if (p < 0)
				continue;
			struct daemon_listen *l = &dc->listen[p];
			for (size_t i = 0; i < l->count; i++) {
				const char *err;
				if (net_listen(net, l->addrs[i], k == 1,
					       fe->proto, fe->server, &err) < 0) {
					fprintf(stderr, "%s:%d: %s\n", cfg->path,
						l->line, err);
					return -1;
				}
			}
		}
	}
	return 0;
}

/* Each connection is a descriptor: use all the hard limit allows (the
 * soft limit is often 1024), so thousands of idle IMAP clients fit. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("loftd", NULL, "cannot raise the descriptor limit: %m");
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096)
		log_warn("loftd", NULL, "only %llu descriptors: few connections "
			 "will fit (raise the hard limit, ulimit -Hn)",
			 (unsigned long long)rl.rlim_cur);
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* Logs go to stderr and syslog: nothing to reopen on SIGHUP. */
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
}

static int run(const struct config *cfg, struct daemon_config *dc,
	       struct auth_settings *aset, struct store_settings *sset)
{
	struct auth *auth = NULL;
	struct store *store = NULL;
	struct net *net = NULL;
	struct control *control = NULL;
	int rc = 1;
	char *msg = NULL;
#ifdef LOFT_HAVE_QUEUE
	struct mail_out mo = {0};
#endif
	struct buf errors;
	buf_init(&errors, 0);

	raise_fd_limit();
	if (mkdir_p(dc->data_dir) < 0) {
		log_error("loftd", NULL, "cannot create data_dir %s: %m",
			  dc->data_dir);
		goto out;
	}
	aset->throttle_daemon = true;     /* keeps data_dir/throttle/ */
	if (auth_open(aset, &auth, &msg) < 0) {
		log_error("loftd", NULL, "cannot open accounts: %s",
			  msg ? msg : "unknown error");
		goto out;
	}
	sset->limits = auth_store_limits;
	sset->limits_ctx = auth;
	sset->acl_hint = auth_acl_hint;
	sset->acl_hint_ctx = auth;
	struct store_error serr = {0};
	if (store_open(sset, &store, &serr) < 0) {
		log_error("loftd", NULL, "cannot open the store: %s", serr.msg);
		goto out;
	}
#ifdef LOFT_HAVE_QUEUE
	if (mail_out_open(&mo, cfg, auth, store) < 0)
		goto out;
#endif
	if (net_create(&dc->net, &net, &msg) < 0) {
		log_error("loftd", NULL, "%s", msg ? msg : "cannot start");
		goto out;
	}
	/* Addresses banned for failed logins are refused at connect. */
	net_set_admit(net, auth_may_connect, auth);
	for (struct frontend *fe = frontends; fe->name; fe++) {
		if (!frontend_wanted(fe, cfg))
			continue;
		fe->server = fe->create(cfg, store, auth, &errors);
		if (fe->server == NULL) {
			fputs(errors.data ? errors.data : "", stderr);
			goto out;
		}
#ifdef LOFT_HAVE_QUEUE
		if (fe->set_queue != NULL)
			fe->set_queue(fe->server, mo.queue);
#endif
	}
	if (start_listeners(net, dc, cfg) < 0)
		goto out;
	control = control_create();
	daemon_verbs_register(control, store);
	daemon_ban_verbs_register(control, auth);
	const char *cerr;
	if (control_listen(control, net, dc->control_socket, &cerr) < 0) {
		log_error("loftd", NULL, "%s", cerr);
		goto out;
	}
	the_net = net;
	install_signals();
	store_start_background(store);
#ifdef LOFT_HAVE_QUEUE
	struct queue_error qerr = {0};
	if (queue_start(mo.queue, &qerr) < 0) {
		log_error("loftd", NULL, "cannot start the queue: %s", qerr.msg);
		goto out;
	}
#endif
	struct store_retention_source retention = auth_retention_source(auth);
	store_retention_start(store, &retention, sset->retention_interval);
	log_info("loftd", NULL, "loftd ready");
	net_run(net);
	log_info("loftd", NULL, "shutting down");
	rc = 0;
out:
	the_net = NULL;
	/* Logins waiting for a hash are dropped, never waited for. */
	auth_shutdown(auth);
	/* Connections (and their sessions) go before the servers they use. */
	net_destroy(&net);
	control_destroy(&control);
	for (struct frontend *fe = frontends; fe->name; fe++) {
		if (fe->server != NULL)
			fe->destroy(fe->server);
		fe->server = NULL;
	}
#ifdef LOFT_HAVE_QUEUE
	/* the queue stores local mail: it goes before the store */
	mail_out_close(&mo);
#endif
	store_close(&store);
	auth_close(&auth);
	free(msg);
	buf_free(&errors);
	if (rc == 0)
		log_info("loftd", NULL, "stopped");
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	bool check = false;
	int c;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'k': check = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("loftd %s\n", LOFT_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}

	struct buf errors, warnings;
	buf_init(&errors, 0);
	buf_init(&warnings, 0);
	struct config *cfg = NULL;
	struct daemon_config dc;
	struct auth_settings aset;
	struct store_settings sset;
	memset(&dc, 0, sizeof(dc));
	int rc = 1;
	if (config_load(path, &cfg, &errors) < 0 ||
	    check_all(cfg, &dc, &aset, &sset, check, &errors, &warnings) < 0 ||
	    errors.len > 0) {
		fputs(warnings.data ? warnings.data : "", stderr);
		fputs(errors.data ? errors.data : "", stderr);
		goto out;
	}
	fputs(warnings.data ? warnings.data : "", stderr);
	if (check) {
		printf("%s: ok\n", path);
		rc = 0;
		goto out;
	}
	log_set_level(dc.log_level);
	if (dc.syslog)
		log_set_syslog("loftd");
	rc = run(cfg, &dc, &aset, &sset);
out:
	daemon_config_deinit(&dc);
	config_free(&cfg);
	buf_free(&errors);
	buf_free(&warnings);
	return rc;
}
