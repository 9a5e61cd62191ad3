/*
 * loftd's parent: the small privileged process of daemon.h.
 *
 * Start: data_dir (created, the user's), its lock, the listeners (bound as
 * root), the TLS pair (read as root: certbot's root-only keys work), then
 * the auth process and the mail process. It then only waits: for signals
 * (through a signalfd, so nothing runs in a handler) and for the
 * children's channels.
 *
 * - The mail process says READY once every listener accepts: "loftd
 *   ready" and READY=1 to systemd.
 * - A dead auth process is logged and started again, its new socket handed
 *   to the mail process (logins in flight fail as temporary). Five deaths
 *   within a minute stop loftd instead. The same for the outbound process
 *   (daemon-outbound.c: TCP connections and DKIM signatures).
 * - A dead mail process stops loftd with a log line and exit status 1
 *   (systemd's Restart=on-failure starts it again): never half-alive.
 * - SIGHUP: the configuration is read and checked again; each changed key
 *   that needs a restart is logged; the live ones, and the certificate
 *   pair when it loads, go to the children (RELOAD). A pair that does not
 *   load is logged and the old one stays.
 * - SIGTERM/SIGINT: STOPPING=1, the mail process stops (its sessions get
 *   their goodbyes), then the auth process; Unix socket files go.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "daemon-chan.h"
#include "daemon.h"
#include "log.h"
#include "net.h"

#define AUTH_DEATHS_MAX 5
#define AUTH_DEATHS_WINDOW_S 60
/* How long a stopping child may take before SIGKILL. */
#define MAIL_STOP_TIMEOUT_S 60
#define AUTH_STOP_TIMEOUT_S 10

struct proc {
	const char *name;
	pid_t pid;                 /* 0: not running */
	int chan;                  /* the parent's end; -1 */
	int (*main)(struct daemon *d, int chan, int peer);
	time_t kill_at;            /* SIGKILL if still there (stopping) */
};

struct parent {
	struct daemon *d;
	struct proc auth, mail, outbound;
	int sigfd;
	bool ready;
	bool stopping;
	int exit_code;
	unsigned reload_pending;   /* RELOADED still awaited */
	bool reload_failed;        /* a child said it could not apply all */
	time_t auth_deaths[AUTH_DEATHS_MAX];
	unsigned auth_death_count;
	time_t out_deaths[AUTH_DEATHS_MAX];
	unsigned out_death_count;
	struct config *live_cfg;   /* the last loaded (d->cfg: as started) */
	struct config **old_cfgs;  /* kept: settings point into them */
	size_t old_cfg_count;
};

/* ---- children ------------------------------------------------------- */

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Closes every descriptor above 2 but those in keep. */
static void close_all_but(int *keep, size_t n)
{
	qsort(keep, n, sizeof(*keep), cmp_int);
	unsigned from = 3;
	for (size_t i = 0; i < n; i++) {
		if (keep[i] < (int)from)
			continue;
		if ((unsigned)keep[i] > from)
			close_range(from, (unsigned)keep[i] - 1, 0);
		from = (unsigned)keep[i] + 1;
	}
	close_range(from, ~0U, 0);
}

static void child_setup(struct parent *p, struct proc *proc, pid_t parent,
			int chan, int peer)
{
	/* Dies with the parent (kill -9 of loftd ends everything). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	char name[16];
	snprintf(name, sizeof(name), "loftd-%s", proc->name);
	prctl(PR_SET_NAME, name);
	unsetenv("NOTIFY_SOCKET");
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	int keep[64];
	size_t n = 0;
	keep[n++] = chan;
	if (peer >= 0)
		keep[n++] = peer;
	if (p->d->lock_fd >= 0)
		keep[n++] = p->d->lock_fd;
	if (proc == &p->mail) {
		for (size_t i = 0; i < p->d->listener_count && n < 64; i++)
			if (p->d->listeners[i].fd >= 0)
				keep[n++] = p->d->listeners[i].fd;
		if (p->d->outbound_fd >= 0 && n < 64)
			keep[n++] = p->d->outbound_fd;
	} else {
		p->d->outbound_fd = -1;
		/* Only the mail process serves the network. */
		for (size_t i = 0; i < p->d->listener_count; i++)
			p->d->listeners[i].fd = -1;
	}
	close_all_but(keep, n);
}

static int spawn(struct parent *p, struct proc *proc, int peer)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("loftd", NULL, "socketpair: %m");
		return -1;
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		log_error("loftd", NULL, "fork: %m");
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		child_setup(p, proc, parent, sv[1], peer);
		int rc = proc->main(p->d, sv[1], peer);
		/* exit, not _exit: a sanitizer build checks the child for
		 * leaks at exit, as it did the single process before. */
		exit(rc);
	}
	close(sv[1]);
	proc->pid = pid;
	proc->chan = sv[0];
	proc->kill_at = 0;
	log_info("loftd", NULL, "%s process started (pid %d)", proc->name,
		 (int)pid);
	return 0;
}

/* The auth (or outbound) process with a new socketpair; *mail_end_r is
 * the mail process's end. */
static int spawn_server(struct parent *p, struct proc *proc, int *mail_end_r)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("loftd", NULL, "socketpair: %m");
		return -1;
	}
	/* The mail process's end must not stay in the child. */
	int mail_end = sv[1];
	int rc = spawn(p, proc, sv[0]);
	close(sv[0]);
	if (rc < 0) {
		close(mail_end);
		return -1;
	}
	*mail_end_r = mail_end;
	return 0;
}

static void describe_status(int status, char *buf, size_t size)
{
	if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, size, "exited with status %d",
			 WEXITSTATUS(status));
}

static void begin_stop(struct parent *p, int code);

/* The auth or outbound process again, its new socket handed to the mail
 * process; five deaths within a minute stop loftd. */
static void restart_server(struct parent *p, struct proc *proc)
{
	bool auth = proc == &p->auth;
	time_t *deaths = auth ? p->auth_deaths : p->out_deaths;
	unsigned *count = auth ? &p->auth_death_count : &p->out_death_count;
	time_t now = time(NULL);
	unsigned n = 0;
	for (unsigned i = 0; i < *count; i++)
		if (now - deaths[i] < AUTH_DEATHS_WINDOW_S)
			deaths[n++] = deaths[i];
	if (n == AUTH_DEATHS_MAX) {
		log_error("loftd", NULL, "the %s process died %d times within "
			  "%d s: stopping loftd", proc->name, AUTH_DEATHS_MAX,
			  AUTH_DEATHS_WINDOW_S);
		*count = n;
		begin_stop(p, 1);
		return;
	}
	deaths[n++] = now;
	*count = n;
	int mail_end;
	if (spawn_server(p, proc, &mail_end) < 0) {
		begin_stop(p, 1);
		return;
	}
	if (p->mail.pid > 0 &&
	    daemon_chan_send(p->mail.chan, auth ? DAEMON_CHAN_AUTH_FD
						: DAEMON_CHAN_OUTBOUND_FD,
			     0, mail_end) < 0)
		log_error("loftd", NULL, "cannot hand the new %s socket to the "
			  "mail process: %m", proc->name);
	close(mail_end);
}

/* SIGTERM to a server process, SIGKILL after timeout_s. */
static void stop_proc(struct proc *proc, unsigned timeout_s)
{
	if (proc->pid > 0 && proc->kill_at == 0) {
		kill(proc->pid, SIGTERM);
		proc->kill_at = time(NULL) + timeout_s;
	}
}

static void child_gone(struct parent *p, struct proc *proc, int status)
{
	char how[96];
	describe_status(status, how, sizeof(how));
	proc->pid = 0;
	if (proc->chan >= 0)
		close(proc->chan);
	proc->chan = -1;
	if (p->stopping) {
		log_info("loftd", NULL, "%s process %s", proc->name, how);
		if (proc == &p->mail) {
			stop_proc(&p->auth, AUTH_STOP_TIMEOUT_S);
			stop_proc(&p->outbound, AUTH_STOP_TIMEOUT_S);
		}
		if (proc == &p->mail && !(WIFEXITED(status) &&
					  WEXITSTATUS(status) == 0))
			p->exit_code = 1;
		return;
	}
	if (proc == &p->mail) {
		log_error("loftd", NULL, "mail process %s%s: stopping loftd", how,
			  p->ready ? "" : " before it was ready");
		begin_stop(p, 1);
		return;
	}
	if (proc == &p->auth)
		log_error("loftd", NULL, "auth process %s: starting it again "
			  "(logins in flight fail as temporary)", how);
	else
		log_error("loftd", NULL, "outbound process %s: starting it "
			  "again (connections and signatures in flight fail; "
			  "the queue tries again later)", how);
	if (p->reload_pending > 0)
		p->reload_pending--;
	restart_server(p, proc);
}

static void reap(struct parent *p)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == p->mail.pid)
			child_gone(p, &p->mail, status);
		else if (pid == p->auth.pid)
			child_gone(p, &p->auth, status);
		else if (pid == p->outbound.pid)
			child_gone(p, &p->outbound, status);
	}
}

static void begin_stop(struct parent *p, int code)
{
	if (code != 0)
		p->exit_code = code;
	if (p->stopping)
		return;
	p->stopping = true;
	daemon_notify("STOPPING=1");
	if (p->mail.pid > 0) {
		kill(p->mail.pid, SIGTERM);
		p->mail.kill_at = time(NULL) + MAIL_STOP_TIMEOUT_S;
	} else {
		stop_proc(&p->auth, AUTH_STOP_TIMEOUT_S);
		stop_proc(&p->outbound, AUTH_STOP_TIMEOUT_S);
	}
}

/* ---- reload --------------------------------------------------------- */

static char *read_text(const char *path, size_t *len_r, struct buf *errors)
{
	char *text = NULL, *err = NULL;
	if (net_tls_read_file(path, &text, len_r, &err) < 0) {
		buf_printf(errors, "%s:0: %s\n", path, err);
		free(err);
		return NULL;
	}
	return text;
}

/* The TLS pair of a new configuration, read and checked; NULL texts when
 * there is none or it does not load (logged: the old one stays). */
static void reload_tls(const struct daemon *nd, char **cert, size_t *clen,
		       char **key, size_t *klen)
{
	*cert = *key = NULL;
	*clen = *klen = 0;
	const char *cf = nd->dc.net.tls_cert, *kf = nd->dc.net.tls_key;
	if (cf == NULL || kf == NULL)
		return;
	char *err = NULL;
	if (net_tls_read_file(cf, cert, clen, &err) < 0 ||
	    net_tls_read_file(kf, key, klen, &err) < 0 ||
	    net_tls_check_pem(*cert, *clen, *key, *klen, cf, kf, &err) < 0) {
		log_error("loftd", NULL, "reload: TLS: %s: keeping the current "
			  "certificate and key", err);
		free(err);
		net_tls_text_free(cert, *clen);
		net_tls_text_free(key, *klen);
		*clen = *klen = 0;
	}
}

static void reload(struct parent *p)
{
	struct daemon *d = p->d;
	if (p->stopping)
		return;
	daemon_notify("RELOADING=1");
	log_info("loftd", NULL, "SIGHUP: reloading %s", d->config_path);
	struct buf errors, warnings;
	buf_init(&errors, 0);
	buf_init(&warnings, 0);
	struct daemon nd;
	memset(&nd, 0, sizeof(nd));
	nd.config_path = d->config_path;
	nd.frontends = d->frontends;
	nd.lock_fd = -1;
	size_t text_len = 0;
	char *text = read_text(d->config_path, &text_len, &errors);
	if (text == NULL ||
	    config_parse(d->config_path, text, text_len, &nd.cfg, &errors) < 0 ||
	    daemon_check(&nd, true, &errors, &warnings) < 0 ||
	    errors.len > 0) {
		daemon_log_lines(LOG_LVL_ERROR, "reload refused: ", errors.data);
		daemon_notify("READY=1");
		goto out;
	}
	daemon_log_lines(LOG_LVL_WARN, "reload: ", warnings.data);
	daemon_reload_diff(d->cfg, p->live_cfg ? p->live_cfg : d->cfg, nd.cfg);
	char *cert, *key;
	size_t clen, klen;
	reload_tls(&nd, &cert, &clen, &key, &klen);
	if (cert != NULL && d->cert_len == 0 && d->dc.net.tls_cert == NULL) {
		/* STARTTLS and implicit-TLS listeners come with a restart. */
		net_tls_text_free(&cert, clen);
		net_tls_text_free(&key, klen);
	}
	int fd = daemon_reload_pack(text, text_len, cert, clen, key, klen);
	net_tls_text_free(&cert, clen);
	net_tls_text_free(&key, klen);
	if (fd < 0) {
		log_error("loftd", NULL, "reload: memfd: %m");
		daemon_notify("READY=1");
		goto out;
	}
	p->reload_pending = 0;
	p->reload_failed = false;
	struct proc *procs[3] = {&p->auth, &p->mail, &p->outbound};
	for (int i = 0; i < 3; i++) {
		if (procs[i]->pid > 0 &&
		    daemon_chan_send(procs[i]->chan, DAEMON_CHAN_RELOAD, 0,
				     fd) == 0)
			p->reload_pending++;
	}
	close(fd);
	log_set_level(nd.dc.log_level);
	/* A restarted auth process starts with the new live settings. */
	d->aset = nd.aset;
	d->aset.data_dir = d->dc.data_dir;
	p->old_cfgs = xrealloc(p->old_cfgs, (p->old_cfg_count + 1) *
			       sizeof(*p->old_cfgs));
	p->old_cfgs[p->old_cfg_count++] = nd.cfg;
	p->live_cfg = nd.cfg;
	nd.cfg = NULL;
	if (p->reload_pending == 0)
		daemon_notify("READY=1");
out:
	daemon_deinit(&nd);
	config_free(&nd.cfg);
	if (text != NULL)
		OPENSSL_cleanse(text, text_len);
	free(text);
	buf_free(&errors);
	buf_free(&warnings);
}

/* ---- the loop ------------------------------------------------------- */

/* A message from a child; a malformed one ends that child. */
static void chan_input(struct parent *p, struct proc *proc)
{
	struct daemon_chan_msg m;
	int rc = daemon_chan_recv(proc->chan, &m);
	if (rc == 0) {
		close(proc->chan);      /* it is exiting: SIGCHLD follows */
		proc->chan = -1;
		return;
	}
	bool ok = rc == 1 && m.fd < 0 &&
		  ((m.type == DAEMON_CHAN_READY && proc == &p->mail) ||
		   (m.type == DAEMON_CHAN_RELOADED && m.arg <= 1));
	if (!ok) {
		if (rc == 1 && m.fd >= 0)
			close(m.fd);
		log_error("loftd", NULL, "%s process sent a malformed message: "
			  "ending it", proc->name);
		kill(proc->pid, SIGKILL);
		return;
	}
	if (m.type == DAEMON_CHAN_READY && !p->ready) {
		p->ready = true;
		log_info("loftd", NULL, "loftd ready");
		daemon_notify("READY=1");
	} else if (m.type == DAEMON_CHAN_RELOADED && p->reload_pending > 0) {
		if (m.arg != 0)
			p->reload_failed = true;
		if (--p->reload_pending == 0) {
			if (p->reload_failed)
				log_warn("loftd", NULL, "reload done, with errors "
					 "(logged above)");
			else
				log_info("loftd", NULL, "reload done");
			daemon_notify("READY=1");
		}
	}
}

static void signal_input(struct parent *p)
{
	struct signalfd_siginfo si;
	while (read(p->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (!p->stopping)
				log_info("loftd", NULL, "shutting down");
			begin_stop(p, 0);
			break;
		case SIGHUP:
			reload(p);
			break;
		case SIGCHLD:
			reap(p);
			break;
		}
	}
}

static void kill_overdue(struct parent *p)
{
	time_t now = time(NULL);
	struct proc *procs[3] = {&p->mail, &p->auth, &p->outbound};
	for (int i = 0; i < 3; i++) {
		struct proc *c = procs[i];
		if (c->pid > 0 && c->kill_at != 0 && now >= c->kill_at) {
			log_error("loftd", NULL, "%s process did not stop: "
				  "killing it", c->name);
			kill(c->pid, SIGKILL);
			c->kill_at = 0;
		}
	}
}

static void loop(struct parent *p)
{
	while (p->mail.pid > 0 || p->auth.pid > 0 || p->outbound.pid > 0) {
		struct pollfd fds[4];
		int n = 0;
		fds[n++] = (struct pollfd){p->sigfd, POLLIN, 0};
		int mail_i = -1, auth_i = -1, out_i = -1;
		if (p->mail.chan >= 0) {
			mail_i = n;
			fds[n++] = (struct pollfd){p->mail.chan, POLLIN, 0};
		}
		if (p->auth.chan >= 0) {
			auth_i = n;
			fds[n++] = (struct pollfd){p->auth.chan, POLLIN, 0};
		}
		if (p->outbound.chan >= 0) {
			out_i = n;
			fds[n++] = (struct pollfd){p->outbound.chan, POLLIN, 0};
		}
		if (poll(fds, (nfds_t)n, p->stopping ? 500 : -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("loftd", NULL, "poll: %m");
			break;
		}
		if (mail_i >= 0 && fds[mail_i].revents != 0 && p->mail.chan >= 0)
			chan_input(p, &p->mail);
		if (auth_i >= 0 && fds[auth_i].revents != 0 && p->auth.chan >= 0)
			chan_input(p, &p->auth);
		if (out_i >= 0 && fds[out_i].revents != 0 &&
		    p->outbound.chan >= 0)
			chan_input(p, &p->outbound);
		if (fds[0].revents != 0)
			signal_input(p);
		if (p->stopping)
			kill_overdue(p);
	}
}

/* ---- start ---------------------------------------------------------- */

/* Each connection is a descriptor: use all the hard limit allows (the
 * soft limit is often 1024), so thousands of idle IMAP clients fit. The
 * children inherit it. */
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

static int read_tls(struct daemon *d)
{
	const char *cf = d->dc.net.tls_cert, *kf = d->dc.net.tls_key;
	if (cf == NULL || kf == NULL)
		return 0;
	char *err = NULL;
	if (net_tls_read_file(cf, &d->cert_pem, &d->cert_len, &err) < 0 ||
	    net_tls_read_file(kf, &d->key_pem, &d->key_len, &err) < 0 ||
	    net_tls_check_pem(d->cert_pem, d->cert_len, d->key_pem, d->key_len,
			      cf, kf, &err) < 0) {
		log_error("loftd", NULL, "TLS: %s", err);
		free(err);
		return -1;
	}
	return 0;
}

static int signals_block(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGCHLD);
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_BLOCK, set, NULL) < 0)
		return -1;
	return signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int daemon_parent_run(struct daemon *d)
{
	struct parent p;
	memset(&p, 0, sizeof(p));
	p.d = d;
	p.auth = (struct proc){"auth", 0, -1, daemon_auth_main, 0};
	p.mail = (struct proc){"mail", 0, -1, daemon_mail_main, 0};
	p.outbound = (struct proc){"outbound", 0, -1, daemon_outbound_main, 0};
	p.sigfd = -1;
	int rc = 1;
	char *err = NULL;

	if (!d->user.set && geteuid() == 0)
		log_warn("loftd", NULL, "no `user` in %s: every process runs as "
			 "root", d->config_path);
	raise_fd_limit();
	if (daemon_data_dir_prepare(d->dc.data_dir, &d->user, &err) < 0 ||
	    daemon_lock(d->dc.data_dir, &d->user, &d->lock_fd, &err) < 0) {
		log_error("loftd", NULL, "%s", err);
		free(err);
		goto out;
	}
	sigset_t set;
	p.sigfd = signals_block(&set);
	if (p.sigfd < 0) {
		log_error("loftd", NULL, "signalfd: %m");
		goto out;
	}
	if (daemon_listeners_bind(d) < 0 || read_tls(d) < 0)
		goto out;
	int mail_end, out_end;
	if (spawn_server(&p, &p.auth, &mail_end) < 0)
		goto out;
	if (spawn_server(&p, &p.outbound, &out_end) < 0) {
		close(mail_end);
		goto out;
	}
	d->outbound_fd = out_end;
	int spawned = spawn(&p, &p.mail, mail_end);
	close(mail_end);
	close(out_end);
	d->outbound_fd = -1;
	/* Only the mail process holds the key and the listeners now. */
	net_tls_text_free(&d->cert_pem, d->cert_len);
	net_tls_text_free(&d->key_pem, d->key_len);
	daemon_listeners_close(d);
	if (spawned < 0)
		begin_stop(&p, 1);
	loop(&p);
	rc = p.exit_code;
	if (rc == 0)
		log_info("loftd", NULL, "stopped");
	else
		log_error("loftd", NULL, "stopped (status %d)", rc);
out:
	if (p.auth.pid > 0 || p.mail.pid > 0 || p.outbound.pid > 0) {
		/* Failed before the loop ran: take the children down. */
		if (p.mail.pid > 0)
			kill(p.mail.pid, SIGKILL);
		if (p.auth.pid > 0)
			kill(p.auth.pid, SIGKILL);
		if (p.outbound.pid > 0)
			kill(p.outbound.pid, SIGKILL);
		while (wait(NULL) > 0)
			;
	}
	net_tls_text_free(&d->cert_pem, d->cert_len);
	net_tls_text_free(&d->key_pem, d->key_len);
	daemon_listeners_close(d);
	daemon_listeners_unlink(d);
	if (p.sigfd >= 0)
		close(p.sigfd);
	for (size_t i = 0; i < p.old_cfg_count; i++)
		config_free(&p.old_cfgs[i]);
	free(p.old_cfgs);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	d->lock_fd = -1;
	return rc;
}
