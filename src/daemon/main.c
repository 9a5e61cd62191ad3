/*
 * loftd: reads and checks the configuration, then runs as privilege-
 * separated processes (daemon.h: a parent that binds and holds the keys,
 * an auth process that alone reads accounts.db, a confined mail process
 * with the front-ends listed below). SIGTERM/SIGINT stop it cleanly,
 * SIGHUP reloads what can change live.
 *
 *   loftd --config FILE            run in the foreground, log to stderr
 *   loftd --config FILE --check    validate: exit 0 if loftd would start
 *                                  (warnings on stderr), 1 on errors, each
 *                                  printed as FILE:LINE: message
 *   loftd --version
 *
 * This file is the list of what the mail process serves: the front-ends
 * (a row each in daemon_frontends) and the services beside them (the
 * outbound queue and its resolver: daemon_extras_*). loftctl reaches the
 * running loftd over the control socket (src/control, control-verbs.c),
 * one more row.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "control-verbs.h"
#include "control.h"
#include "daemon.h"
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
#include "queue-store.h"
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

/* ---- the front-ends -------------------------------------------------- */

#ifdef LOFT_HAVE_IMAP
static void *imap_create(const struct daemon_services *sv, struct buf *e)
{
	return imap_server_create(sv->cfg, sv->store, sv->auth, e);
}
static void imap_destroy(void *server)
{
	struct imap_server *p = server;
	imap_server_destroy(&p);
}
static void imap_reload(void *server, const struct config *cfg)
{
	imap_server_reload(server, cfg);
}
#endif
#ifdef LOFT_HAVE_POP3
static void *pop3_create(const struct daemon_services *sv, struct buf *e)
{
	return pop3_server_create(sv->cfg, sv->store, sv->auth, e);
}
static void pop3_destroy(void *server)
{
	struct pop3_server *p = server;
	pop3_server_destroy(&p);
}
static void pop3_reload(void *server, const struct config *cfg)
{
	pop3_server_reload(server, cfg);
}
#endif
#ifdef LOFT_HAVE_LMTP
static void *lmtp_create(const struct daemon_services *sv, struct buf *e)
{
	return lmtp_server_create(sv->cfg, sv->store, sv->auth, e);
}
static void lmtp_destroy(void *server)
{
	struct lmtp_server *p = server;
	lmtp_server_destroy(&p);
}
static void lmtp_reload(void *server, const struct config *cfg)
{
	lmtp_server_reload(server, cfg);
}
#endif

#ifdef LOFT_HAVE_HTTP
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

/* The routes of other modules on the [http] server (the MTA-STS policy,
 * JMAP); in a check, their settings only. */
static struct http_server *http_add_routes(const struct daemon_services *sv,
					   struct http_server *server,
					   struct buf *e)
{
	if (server == NULL)
		return NULL;
#ifdef LOFT_HAVE_SMTP
	static char mtasts[600];
	static const struct http_route mtasts_route = {
		.method = "GET", .prefix = "/.well-known/mta-sts.txt",
		.flags = HTTP_ROUTE_EXACT, .handle = mtasts_policy,
	};
	if (smtp_mtasts_policy(sv->cfg, mtasts, sizeof(mtasts), e) < 0 ||
	    http_route_add(server, &mtasts_route, mtasts) < 0) {
		http_server_destroy(&server);
		return NULL;
	}
#endif
#ifdef LOFT_HAVE_JMAP
	struct jmap *j = jmap_create(sv->cfg, sv->store, sv->auth, e);
	if (j == NULL ||
	    (sv->store != NULL && jmap_http_register(j, server, e) < 0)) {
		jmap_destroy(&j);
		http_server_destroy(&server);
		return NULL;
	}
	if (sv->store == NULL) {
		jmap_destroy(&j);
	} else {
		if (sv->queue != NULL) {
			jmap_set_queue(j, sv->queue);
			/* with the queue, Sieve is installed
			 * (daemon_extras_open): deliveries answer with the
			 * VacationResponse */
			jmap_set_vacation(j, true);
		}
		the_jmap = j;
	}
#else
	(void)sv;
	(void)e;
#endif
	return server;
}

/* The HTTP server advertises the configured listeners (autoconfig,
 * Autodiscover, .mobileconfig). */
static void *http_create(const struct daemon_services *sv, struct buf *e)
{
	struct http_service svc[64];
	size_t n = 0;
	for (int p = 0; sv->dc != NULL && p < DAEMON_PROTO_COUNT; p++)
		for (size_t i = 0; i < sv->dc->listen[p].count &&
		     n < sizeof(svc) / sizeof(svc[0]); i++) {
			svc[n].proto = daemon_proto_names[p];
			svc[n].addr = sv->dc->listen[p].addrs[i];
			n++;
		}
	struct http_server *server = http_server_create(sv->cfg, sv->store,
							sv->auth, svc, n, e);
	/* Modules with HTTP routes (jmap) add them here. */
	return http_add_routes(sv, server, e);
}
static void *metrics_create(const struct daemon_services *sv, struct buf *e)
{
	return http_metrics_server_create(sv->cfg, sv->store, sv->auth, e);
}
static void http_reload(void *server, const struct config *cfg)
{
	http_server_reload(server, cfg);
}
static void http_destroy(void *server)
{
	struct http_server *p = server;
	http_server_destroy(&p);
}
/* The webmail's files, read-only. */
static void http_sandbox(const struct daemon *d, struct daemon_sandbox *sb)
{
	static char *dir;
	free(dir);
	dir = http_webmail_dir(d->cfg);
	daemon_sandbox_ro(sb, dir);
}
/* The [http] server: its routes' module (jmap) goes after it. */
static void http_main_destroy(void *server)
{
	http_destroy(server);
#ifdef LOFT_HAVE_JMAP
	jmap_destroy(&the_jmap);
#endif
}
#endif

#ifdef LOFT_HAVE_SMTP
static void *smtp_create(const struct daemon_services *sv, enum smtp_mode mode,
			 struct buf *e)
{
	struct smtp_server *server = smtp_server_create(sv->cfg, mode,
							sv->store, sv->auth, e);
	if (server != NULL && sv->queue != NULL)
		smtp_server_set_queue(server, sv->queue);
	return server;
}
static void *smtp_mx_create(const struct daemon_services *sv, struct buf *e)
{
	return smtp_create(sv, SMTP_MODE_MX, e);
}
static void *smtp_sub_create(const struct daemon_services *sv, struct buf *e)
{
	return smtp_create(sv, SMTP_MODE_SUBMISSION, e);
}
static void smtp_reload(void *server, const struct config *cfg)
{
	smtp_server_reload(server, cfg);
}
static void smtp_destroy(void *server)
{
	struct smtp_server *p = server;
	smtp_server_destroy(&p);
}
#endif

#ifdef LOFT_HAVE_MANAGESIEVE
static void *managesieve_create(const struct daemon_services *sv,
				struct buf *e)
{
	return managesieve_server_create(sv->cfg, sv->store, sv->auth, e);
}
static void managesieve_destroy(void *server)
{
	struct managesieve_server *p = server;
	managesieve_server_destroy(&p);
}
#endif

/* The control socket: loftctl's way in (kick, user del, ...). Its path
 * is the top-level control_socket, mode 0600; the parent binds it. */
static void *control_fe_create(const struct daemon_services *sv,
			       struct buf *e)
{
	struct control *ctl = control_create();
	/* The mail process serves it; loftd's pid is its parent's. */
	control_set_pid(ctl, (long)getppid());
	if (sv->store != NULL)
		daemon_verbs_register(ctl, sv->store);
	if (sv->auth != NULL)
		daemon_ban_verbs_register(ctl, sv->auth);
	return ctl;
}
static void control_fe_destroy(void *server)
{
	struct control *ctl = server;
	control_destroy(&ctl);
}
static void control_fe_listeners(struct daemon *d, struct daemon_frontend *fe)
{
	if (d->dc.control_socket == NULL)
		return;     /* the configuration's error is reported */
	char *addr = xasprintf("unix:%s", d->dc.control_socket);
	const struct config_entry *e = config_find(d->cfg, "", "control_socket");
	daemon_listener_add(d, addr, "control", e != NULL ? e->line : 0, false,
			    0600, fe);
	free(addr);
}

/* A front-end adds its row: the sections it listens for (plain and
 * implicit TLS, -1 for none), its net_proto, and how the mail process
 * creates, reloads and destroys its server; listeners, for addresses
 * that are not a section's `listen`. */
struct daemon_frontend daemon_frontends[] = {
#ifdef LOFT_HAVE_IMAP
	{.name = "imap", .plain = DAEMON_IMAP, .tls = DAEMON_IMAPS,
	 .proto = &imap_proto, .create = imap_create, .destroy = imap_destroy,
	 .reload = imap_reload},
#endif
#ifdef LOFT_HAVE_POP3
	{.name = "pop3", .plain = DAEMON_POP3, .tls = DAEMON_POP3S,
	 .proto = &pop3_proto, .create = pop3_create, .destroy = pop3_destroy,
	 .reload = pop3_reload},
#endif
#ifdef LOFT_HAVE_LMTP
	{.name = "lmtp", .plain = DAEMON_LMTP, .tls = -1, .proto = &lmtp_proto,
	 .create = lmtp_create, .destroy = lmtp_destroy, .reload = lmtp_reload},
#endif
#ifdef LOFT_HAVE_HTTP
	{.name = "http", .plain = DAEMON_HTTP, .tls = DAEMON_HTTPS,
	 .proto = &http_proto, .create = http_create,
	 .destroy = http_main_destroy, .reload = http_reload,
	 .sandbox = http_sandbox},
	{.name = "metrics", .plain = DAEMON_METRICS, .tls = -1,
	 .proto = &http_proto, .create = metrics_create,
	 .destroy = http_destroy, .reload = http_reload},
#endif
#ifdef LOFT_HAVE_SMTP
	{.name = "smtp", .plain = DAEMON_SMTP, .tls = -1,
	 .proto = &smtp_mx_proto, .create = smtp_mx_create,
	 .destroy = smtp_destroy, .reload = smtp_reload},
	{.name = "submission", .plain = DAEMON_SUBMISSION,
	 .tls = DAEMON_SUBMISSIONS, .proto = &smtp_submission_proto,
	 .create = smtp_sub_create, .destroy = smtp_destroy,
	 .reload = smtp_reload},
#endif
#ifdef LOFT_HAVE_MANAGESIEVE
	{.name = "managesieve", .plain = DAEMON_MANAGESIEVE, .tls = -1,
	 .proto = &managesieve_proto, .create = managesieve_create,
	 .destroy = managesieve_destroy},
#endif
	{.name = "control", .plain = -1, .tls = -1, .proto = &control_proto,
	 .create = control_fe_create, .destroy = control_fe_destroy,
	 .listeners = control_fe_listeners},
	{.name = NULL, .plain = -1, .tls = -1},
};

/* ---- beside the front-ends: mail out (issue 13) ---------------------- */

#ifdef LOFT_HAVE_QUEUE
struct mail_out {
	struct dns_settings dset;
	struct queue_settings qset;
	struct dns *dns;
	struct queue *queue;
	struct auth *auth;
	struct delivery *delivery;  /* the queue's local recipients */
#ifdef LOFT_HAVE_MAILAUTH
	struct dkim_signer *signer; /* data_dir/dkim, without an outbound
				       process (NULL with one) */
	struct outbound_client *outbound;
#endif
};

static struct mail_out mail_out;

#ifdef LOFT_HAVE_MAILAUTH
static int dkim_sign_hook(void *ctx, const void *data, size_t len,
			  struct buf *out)
{
	struct mail_out *mo = ctx;
	if (mo->outbound == NULL)
		return dkim_signer_sign(mo->signer, data, len, out);
	/* the keys are the outbound process's: it gets the header and the
	 * body hash */
	uint8_t bh[32];
	size_t bh_len;
	size_t hlen = dkim_sign_split(data, len, bh, &bh_len);
	return outbound_client_sign(mo->outbound, data, hlen, bh, bh_len, out);
}

static int outbound_sign(void *ctx, const char *head, size_t head_len,
			 const uint8_t *bh, size_t bh_len, struct buf *out)
{
	return dkim_signer_sign_head(ctx, head, head_len, bh, bh_len, out);
}
#endif

outbound_sign_fn *daemon_extras_signer(const char *dir, void **ctx_r)
{
#ifdef LOFT_HAVE_MAILAUTH
	*ctx_r = dkim_signer_create(dir);
	return outbound_sign;
#else
	(void)dir;
	*ctx_r = NULL;
	return NULL;
#endif
}

void daemon_extras_signer_free(void *ctx)
{
#ifdef LOFT_HAVE_MAILAUTH
	struct dkim_signer *s = ctx;
	dkim_signer_destroy(&s);
#else
	(void)ctx;
#endif
}

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
#endif

int daemon_extras_check(const struct config *cfg, struct buf *errors)
{
	int rc = 0;
#ifdef LOFT_HAVE_QUEUE
	struct dns_settings dset;
	struct queue_settings qset;
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
#endif
	return rc;
}

void daemon_extras_sandbox(const struct daemon *d, struct daemon_sandbox *sb)
{
#ifdef LOFT_HAVE_QUEUE
	/* The queue's spool; the resolver's files; the CAs outbound TLS
	 * verifies against (TLS runs here over the sockets the outbound
	 * process connects). */
	static char *queue_dir;
	free(queue_dir);
	queue_dir = xasprintf("%s/queue", d->dc.data_dir);
	daemon_sandbox_rw(sb, queue_dir);
	static const char *const ro[] = {
		"/etc/resolv.conf", "/etc/hosts", "/etc/ssl", "/usr/lib/ssl",
		"/usr/share/ca-certificates", "/usr/share/dns", NULL,
	};
	for (int i = 0; ro[i] != NULL; i++)
		daemon_sandbox_ro(sb, ro[i]);
	daemon_sandbox_ro(sb, config_get(d->cfg, "queue", "tls_ca_file"));
	daemon_sandbox_ro(sb, config_get(d->cfg, "queue",
					 "smarthost_password_file"));
	daemon_sandbox_ro(sb, config_get(d->cfg, "dns", "trust_anchor"));
	/* DKIM private keys: not here, the outbound process signs. TCP:
	 * the resolver's ports only (the outbound process connects, and
	 * makes the HTTP requests of rspamd, MTA-STS and Web Push). */
	sb->tcp_confined = true;
	struct dns_settings dset;
	struct buf derr;
	buf_init(&derr, 0);
	if (dns_settings_from_config(d->cfg, &dset, &derr) == 0)
		sb->tcp_port_count = dns_settings_ports(
			&dset, sb->tcp_connect_ports,
			sizeof(sb->tcp_connect_ports) /
			sizeof(*sb->tcp_connect_ports));
	dns_settings_deinit(&dset);
	buf_free(&derr);
	/* [sieve]: the admin's before/after scripts (their directories,
	 * once each) and global_dir, read at start and at each delivery's
	 * include :global. */
	static char **sieve_dirs;
	static size_t sieve_dir_count;
	for (size_t i = 0; i < sieve_dir_count; i++)
		free(sieve_dirs[i]);
	sieve_dir_count = 0;
	static const char *const lists[] = {"before", "after"};
	for (int l = 0; l < 2; l++) {
		const char *list = config_get(d->cfg, "sieve", lists[l]);
		size_t n = 0;
		char **files = list != NULL ? config_split_list(list, &n) : NULL;
		for (size_t i = 0; i < n; i++) {
			char *slash = strrchr(files[i], '/');
			char *dir = slash == NULL ? xstrdup(".")
				    : slash == files[i] ? xstrdup("/")
				    : xstrndup(files[i],
					       (size_t)(slash - files[i]));
			bool seen = false;
			for (size_t k = 0; k < sieve_dir_count && !seen; k++)
				seen = strcmp(sieve_dirs[k], dir) == 0;
			if (seen || sieve_dir_count >= 8) {
				if (!seen)
					log_warn("loftd", NULL, "[sieve] scripts "
						 "in more than 8 directories: %s "
						 "is not readable", dir);
				free(dir);
				continue;
			}
			sieve_dirs = xrealloc(sieve_dirs, (sieve_dir_count + 1) *
							  sizeof(*sieve_dirs));
			sieve_dirs[sieve_dir_count++] = dir;
			daemon_sandbox_ro(sb, dir);
		}
		for (size_t i = 0; i < n; i++)
			free(files[i]);
		free(files);
	}
	daemon_sandbox_ro(sb, config_get(d->cfg, "sieve", "global_dir"));
#else
	(void)d;
	(void)sb;
#endif
}

int daemon_extras_open(struct daemon_services *sv)
{
#ifdef LOFT_HAVE_QUEUE
	struct mail_out *mo = &mail_out;
	struct buf errors;
	char *msg = NULL;
	struct queue_error qerr = {0};

	buf_init(&errors, 0);
	dns_settings_from_config(sv->cfg, &mo->dset, &errors);
	queue_settings_from_config(sv->cfg, &mo->qset, &errors);
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
	/* blobs = s3: the queued messages' bytes in the object store */
	if (queue_store_attach(mo->queue, sv->store) < 0) {
		log_error("loftd", NULL, "cannot open the queue: its messages "
			  "go to the store's object store, which is not open");
		return -1;
	}
	mo->auth = sv->auth;
	mo->delivery = delivery_create(sv->store, sv->auth, mo->qset.hostname);
	struct queue_hooks hooks = {
		.is_local = local_domain, .deliver = local_deliver, .ctx = mo,
	};
#ifdef LOFT_HAVE_MAILAUTH
	mo->outbound = sv->outbound;
	if (mo->outbound == NULL) {
		char *dir = xasprintf("%s/dkim", mo->qset.data_dir);
		mo->signer = dkim_signer_create(dir);
		free(dir);
	}
	hooks.sign = dkim_sign_hook;
#endif
	queue_set_hooks(mo->queue, &hooks);
	/* Sieve for every delivery of the process; replies through the
	 * queue */
	struct buf serr;
	buf_init(&serr, 0);
	struct delivery_sieve *ds = delivery_sieve_load(sv->cfg, &serr);
	if (ds == NULL) {
		log_error("loftd", NULL, "[sieve]: %s", serr.data ? serr.data : "");
		buf_free(&serr);
		return -1;
	}
	buf_free(&serr);
	delivery_sieve_install(ds, mo->queue);
	delivery_sieve_unref(&ds);
	sv->queue = mo->queue;
#else
	(void)sv;
#endif
	return 0;
}

int daemon_extras_reload(const struct config *cfg)
{
#ifdef LOFT_HAVE_QUEUE
	/* [sieve]: the admin's scripts, compiled again; a broken one keeps
	 * the ones running (the parent's check refused it already; here a
	 * file the confinement does not reach) */
	struct buf serr;
	buf_init(&serr, 0);
	struct delivery_sieve *ds = delivery_sieve_load(cfg, &serr);
	if (ds == NULL) {
		daemon_log_lines(LOG_LVL_ERROR, "reload: [sieve]: keeping the "
				 "running scripts: ", serr.data);
		buf_free(&serr);
		return -1;
	}
	buf_free(&serr);
	if (mail_out.queue != NULL)
		delivery_sieve_install(ds, mail_out.queue);
	delivery_sieve_unref(&ds);
#else
	(void)cfg;
#endif
	return 0;
}

int daemon_extras_start(struct daemon_services *sv)
{
#ifdef LOFT_HAVE_QUEUE
	struct queue_error qerr = {0};
	if (queue_start(mail_out.queue, &qerr) < 0) {
		log_error("loftd", NULL, "cannot start the queue: %s", qerr.msg);
		return -1;
	}
#else
	(void)sv;
#endif
	return 0;
}

void daemon_extras_close(struct daemon_services *sv)
{
#ifdef LOFT_HAVE_QUEUE
	/* the queue stores local mail: it goes before the store */
	struct mail_out *mo = &mail_out;
	delivery_sieve_install(NULL, NULL);
	queue_close(&mo->queue);
	delivery_destroy(&mo->delivery);
#ifdef LOFT_HAVE_MAILAUTH
	dkim_signer_destroy(&mo->signer);
#endif
	dns_destroy(&mo->dns);
	dns_settings_deinit(&mo->dset);
	sv->queue = NULL;
#else
	(void)sv;
#endif
}

/* ---- main ------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f, "usage: loftd --config FILE [--check]\n"
		   "       loftd --version\n");
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
	struct daemon d;
	memset(&d, 0, sizeof(d));
	d.config_path = path;
	d.frontends = daemon_frontends;
	d.lock_fd = -1;
	d.outbound_fd = -1;
	int rc = 1;
	if (config_load(path, &d.cfg, &errors) < 0 ||
	    daemon_check(&d, check, &errors, &warnings) < 0 ||
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
	log_set_level(d.dc.log_level);
	if (d.dc.syslog)
		log_set_syslog("loftd");
	rc = daemon_parent_run(&d);
out:
	daemon_deinit(&d);
	config_free(&d.cfg);
	buf_free(&errors);
	buf_free(&warnings);
	return rc;
}
