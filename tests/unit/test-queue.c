/*
 * Unit tests of the outbound queue (src/queue/): enqueue is durable
 * (reopened, the message is there), list/hold/release/retry/delete, and
 * delivery to a smarthost (a tiny SMTP sink in a thread of this test):
 * accepted recipients leave the queue, a 550 recipient bounces (a DSN to
 * the sender is queued), a 450 one stays with its reply and a next
 * attempt, and local recipients go through the delivery hook.
 */
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "buf.h"
#include "queue.h"
#include "queue-private.h"

static char tmpdir[256];

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/loft-test-queue-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		abort();
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
}

static struct queue_settings settings(const char *smarthost)
{
	struct queue_settings set;
	struct buf errors;
	memset(&set, 0, sizeof(set));
	buf_init(&errors, 0);
	set.data_dir = tmpdir;
	set.hostname = "mx.example.test";
	set.smarthost = smarthost;
	set.smarthost_tls = QUEUE_TLS_NONE;
	set.max_age = 86400;
	set.retry_min = 600;
	set.retry_max = 3600;
	set.workers = 2;
	set.per_domain = 2;
	set.connect_timeout = 5;
	set.command_timeout = 10;
	set.fsync = false;
	buf_free(&errors);
	return set;
}

static const char msg[] = "From: a@example.test\r\nTo: b@remote.test\r\n"
			  "Subject: hi\r\n\r\n.leading dot\r\nbody\r\n";

static int count_listed;
static bool count_cb(void *ctx, const struct queue_message_info *info)
{
	count_listed++;
	return true;
}

static int listed(struct queue *q)
{
	struct queue_error err = {0};
	count_listed = 0;
	CHECK_INT(queue_list(q, count_cb, NULL, &err), 0);
	return count_listed;
}

static void test_enqueue_durable_admin(void)
{
	struct queue_settings set = settings(NULL);
	struct queue *q;
	struct queue_error err = {0};
	struct queue_rcpt rcpts[2] = {{.address = "b@remote.test"},
				      {.address = "c@other.test",
				       .notify = QUEUE_NOTIFY_NEVER}};
	struct queue_envelope env = {.sender = "a@example.test", .rcpts = rcpts,
				     .rcpt_count = 2};
	struct queue_rcpt_result res[2];
	struct queue_message_info *info = NULL;
	char id[QUEUE_ID_SIZE];
	char *data;
	size_t len;

	setup();
	CHECK_INT(queue_open(&set, &q, &err), 0);
	CHECK_INT(queue_enqueue(q, &env, msg, strlen(msg), id, res, &err), 0);
	if (err.kind != QUEUE_ERR_NONE)
		fprintf(stderr, "enqueue: %s\n", err.msg);
	CHECK_INT(strlen(id), 16);
	CHECK_INT(res[0].status, QUEUE_RCPT_QUEUED);
	queue_close(&q);

	/* reopened: still there, bytes intact */
	CHECK_INT(queue_open(&set, &q, &err), 0);
	CHECK_INT(listed(q), 1);
	CHECK_INT(queue_message_get(q, id, &info, &err), 0);
	CHECK_INT(info->rcpt_count, 2);
	CHECK_STR(info->sender, "a@example.test");
	CHECK_STR(info->rcpts[1].address, "c@other.test");
	CHECK_INT(info->rcpts[1].notify, QUEUE_NOTIFY_NEVER);
	queue_message_info_free(&info);
	CHECK_INT(queue_message_data(q, id, &data, &len, &err), 0);
	CHECK_MEM(data, len, msg, strlen(msg));
	free(data);

	CHECK_INT(queue_hold(q, id, &err), 0);
	CHECK_INT(queue_message_get(q, id, &info, &err), 0);
	CHECK(info->held);
	queue_message_info_free(&info);
	CHECK_INT(queue_retry(q, id, &err), -1); /* held: not retried */
	CHECK_INT(queue_release(q, id, &err), 0);
	CHECK_INT(queue_retry(q, NULL, &err), 0);
	CHECK_INT(queue_hold(q, "0000000000000000", &err), -1);
	CHECK_INT(err.kind, QUEUE_ERR_NOTFOUND);
	CHECK_INT(queue_delete(q, id, &err), 0);
	CHECK_INT(listed(q), 0);
	CHECK_INT(queue_message_get(q, id, &info, &err), -1);

	/* bad envelopes are refused, nothing queued */
	env.rcpt_count = 0;
	CHECK_INT(queue_enqueue(q, &env, msg, strlen(msg), id, NULL, &err), -1);
	CHECK_INT(err.kind, QUEUE_ERR_INVALID);
	rcpts[0].address = "no-at-sign";
	env.rcpt_count = 1;
	CHECK_INT(queue_enqueue(q, &env, msg, strlen(msg), id, NULL, &err), -1);
	CHECK_INT(listed(q), 0);
	queue_close(&q);
	teardown();
}

/* ---- a tiny SMTP sink --------------------------------------------- */

struct sink {
	int listen_fd;
	unsigned port;
	pthread_t thread;
	struct buf got;          /* every DATA received, concatenated */
	int messages;
	int connections;
	bool refuse;             /* greet with 421 and hang up */
	int live;                /* sessions running (one thread each) */
	pthread_mutex_t mu;
};

static int sink_line(int fd, char *line, size_t size)
{
	size_t n = 0;
	while (n + 1 < size) {
		char c;
		if (recv(fd, &c, 1, 0) != 1)
			return -1;
		line[n++] = c;
		if (c == '\n')
			break;
	}
	line[n] = '\0';
	return 0;
}

static void sink_session(struct sink *s, int fd)
{
	char line[1024];
	const char *greet = "220 sink ESMTP\r\n";
	bool data = false;
	struct buf msgbuf;

	buf_init(&msgbuf, 0);
	pthread_mutex_lock(&s->mu);
	s->connections++;
	if (s->refuse)
		greet = "421 4.3.2 sink is down\r\n";
	pthread_mutex_unlock(&s->mu);
	send(fd, greet, strlen(greet), 0);
	if (greet[0] == '4') {
		close(fd);
		buf_free(&msgbuf);
		return;
	}
	while (sink_line(fd, line, sizeof(line)) == 0) {
		const char *r = NULL;
		if (data) {
			if (strcmp(line, ".\r\n") == 0) {
				data = false;
				pthread_mutex_lock(&s->mu);
				buf_append(&s->got, msgbuf.data, msgbuf.len);
				s->messages++;
				pthread_mutex_unlock(&s->mu);
				buf_reset(&msgbuf);
				r = "250 2.0.0 queued\r\n";
			} else {
				buf_append_str(&msgbuf, line);
				continue;
			}
		} else if (strncmp(line, "EHLO", 4) == 0) {
			r = "250-sink\r\n250-PIPELINING\r\n250 SIZE 100000\r\n";
		} else if (strncmp(line, "MAIL", 4) == 0) {
			r = "250 2.1.0 ok\r\n";
		} else if (strncmp(line, "RCPT TO:<bad@", 13) == 0) {
			r = "550 5.1.1 no such user\r\n";
		} else if (strncmp(line, "RCPT TO:<later@", 15) == 0) {
			r = "450 4.2.0 try later\r\n";
		} else if (strncmp(line, "RCPT", 4) == 0) {
			r = "250 2.1.5 ok\r\n";
		} else if (strncmp(line, "DATA", 4) == 0) {
			r = "354 go\r\n";
			data = true;
		} else if (strncmp(line, "RSET", 4) == 0) {
			r = "250 2.0.0 ok\r\n";
		} else if (strncmp(line, "QUIT", 4) == 0) {
			send(fd, "221 bye\r\n", 9, 0);
			break;
		} else {
			r = "502 5.5.1 no\r\n";
		}
		send(fd, r, strlen(r), 0);
	}
	buf_free(&msgbuf);
	close(fd);
}

struct sink_conn {
	struct sink *s;
	int fd;
};

static void *sink_conn_main(void *arg)
{
	struct sink_conn *c = arg;
	struct sink *s = c->s;

	sink_session(s, c->fd);
	free(c);
	pthread_mutex_lock(&s->mu);
	s->live--;
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Sessions at once, as a real server takes them. */
static void *sink_main(void *arg)
{
	struct sink *s = arg;
	for (;;) {
		int fd = accept(s->listen_fd, NULL, NULL);
		struct sink_conn *c;
		pthread_t t;
		if (fd < 0)
			return NULL;
		c = malloc(sizeof(*c));
		c->s = s;
		c->fd = fd;
		pthread_mutex_lock(&s->mu);
		s->live++;
		pthread_mutex_unlock(&s->mu);
		if (pthread_create(&t, NULL, sink_conn_main, c) != 0)
			abort();
		pthread_detach(t);
	}
}

static void sink_start(struct sink *s)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);

	memset(s, 0, sizeof(*s));
	buf_init(&s->got, 0);
	pthread_mutex_init(&s->mu, NULL);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(s->listen_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(s->listen_fd, 8) < 0)
		abort();
	getsockname(s->listen_fd, (struct sockaddr *)&sin, &sl);
	s->port = ntohs(sin.sin_port);
	pthread_create(&s->thread, NULL, sink_main, s);
}

static void sink_stop(struct sink *s)
{
	shutdown(s->listen_fd, SHUT_RDWR);
	close(s->listen_fd);
	pthread_join(s->thread, NULL);
	for (;;) { /* the queue said QUIT: its sessions end */
		pthread_mutex_lock(&s->mu);
		int live = s->live;
		pthread_mutex_unlock(&s->mu);
		if (live == 0)
			break;
		usleep(10000);
	}
	buf_free(&s->got);
}

/* local delivery hook: stores nothing, says 250 except for "full@" */
static int local_calls;
static bool is_local(void *ctx, const char *domain)
{
	return strcmp(domain, "example.test") == 0;
}
static void deliver(void *ctx, const char *sender, const struct queue_rcpt *r,
		    size_t n, const void *data, size_t len,
		    struct queue_rcpt_result *res)
{
	local_calls++;
	for (size_t i = 0; i < n; i++) {
		res[i].code = strncmp(r[i].address, "full@", 5) == 0 ? 452 : 250;
		snprintf(res[i].enhanced, sizeof(res[i].enhanced), "%s",
			 res[i].code == 250 ? "2.0.0" : "4.2.2");
		snprintf(res[i].text, sizeof(res[i].text), "stored");
	}
}

static bool wait_listed(struct queue *q, int want)
{
	for (int i = 0; i < 2400; i++) {
		if (listed(q) == want)
			return true;
		usleep(25000);
	}
	return false;
}

static void test_smarthost_delivery(void)
{
	struct sink sink;
	char hostport[64];
	struct queue_settings set;
	struct queue *q;
	struct queue_error err = {0};
	struct queue_rcpt rcpts[4] = {{.address = "b@remote.test"},
				      {.address = "bad@remote.test"},
				      {.address = "later@remote.test"},
				      {.address = "alice@example.test"}};
	struct queue_envelope env = {.sender = "a@example.test", .rcpts = rcpts,
				     .rcpt_count = 4};
	struct queue_hooks hooks = {.is_local = is_local, .deliver = deliver};
	struct queue_rcpt_result res[4];
	struct queue_message_info *info = NULL;
	char id[QUEUE_ID_SIZE];

	setup();
	sink_start(&sink);
	snprintf(hostport, sizeof(hostport), "127.0.0.1:%u", sink.port);
	set = settings(hostport);
	CHECK_INT(queue_open(&set, &q, &err), 0);
	queue_set_hooks(q, &hooks);
	CHECK_INT(queue_start(q, &err), 0);
	CHECK_INT(queue_enqueue(q, &env, msg, strlen(msg), id, res, &err), 0);
	CHECK_INT(res[3].status, QUEUE_RCPT_DELIVERED);
	CHECK_INT(local_calls, 1);
	/* the DSN for bad@ goes to a@example.test: local, stored at once;
	 * later@ stays queued with the sink's reply */
	for (int i = 0; i < 400; i++) {
		if (queue_message_get(q, id, &info, &err) == 0 &&
		    info->rcpt_count == 3 && info->rcpts[2].code == 450)
			break;
		queue_message_info_free(&info);
		usleep(25000);
	}
	CHECK(info != NULL);
	if (info != NULL) {
		CHECK_INT(info->rcpts[0].status, QUEUE_RCPT_DELIVERED);
		CHECK_INT(info->rcpts[1].status, QUEUE_RCPT_FAILED);
		CHECK_INT(info->rcpts[1].code, 550);
		CHECK_INT(info->rcpts[2].status, QUEUE_RCPT_QUEUED);
		CHECK(info->rcpts[2].next_attempt > time(NULL) + 60);
		CHECK(info->rcpts[2].last_error != NULL &&
		      strstr(info->rcpts[2].last_error, "try later") != NULL);
		queue_message_info_free(&info);
	}
	CHECK_INT(local_calls, 2); /* the bounce */
	pthread_mutex_lock(&sink.mu);
	CHECK_INT(sink.messages, 1);
	/* dot-stuffed on the wire */
	CHECK(strstr(sink.got.data, "\r\n..leading dot\r\n") != NULL);
	pthread_mutex_unlock(&sink.mu);
	/* the admin deletes what is left */
	CHECK_INT(queue_delete(q, id, &err), 0);
	CHECK(wait_listed(q, 0));
	queue_close(&q);
	sink_stop(&sink);
	teardown();
}

/* A destination that cannot be reached is tried once per backoff, not
 * once per queued message: the others wait with "delivery temporarily
 * suspended" and no attempt counted; an admin's retry tries it again at
 * once, and then everything goes. */
struct due_scan {
	int total, waiting, untried;
	time_t until;
};
static bool due_cb(void *ctx, const struct queue_message_info *info)
{
	struct due_scan *d = ctx;
	for (size_t i = 0; i < info->rcpt_count; i++) {
		const struct queue_rcpt_info *r = &info->rcpts[i];
		d->total++;
		if (r->next_attempt >= d->until)
			d->waiting++;
		if (r->attempts == 0 && r->last_error != NULL &&
		    strstr(r->last_error, "delivery temporarily suspended: ") &&
		    strstr(r->last_error, "sink is down"))
			d->untried++;
	}
	return true;
}

static void test_dead_destination(void)
{
	enum { N = 60 };
	struct sink sink;
	char hostport[64];
	struct queue_settings set;
	struct queue *q;
	struct queue_error err = {0};
	struct queue_rcpt rcpt = {.address = "b@remote.test"};
	struct queue_envelope env = {.sender = "a@example.test", .rcpts = &rcpt,
				     .rcpt_count = 1};
	char id[QUEUE_ID_SIZE];
	struct due_scan scan = {0};
	time_t t0 = time(NULL);

	setup();
	sink_start(&sink);
	sink.refuse = true;
	snprintf(hostport, sizeof(hostport), "127.0.0.1:%u", sink.port);
	set = settings(hostport);
	CHECK_INT(queue_open(&set, &q, &err), 0);
	for (int i = 0; i < N; i++)
		CHECK_INT(queue_enqueue(q, &env, msg, strlen(msg), id, NULL,
					&err), 0);
	CHECK_INT(queue_start(q, &err), 0);
	/* every recipient waits for the destination's backoff (600 s) */
	for (int i = 0; i < 2400; i++) {
		memset(&scan, 0, sizeof(scan));
		scan.until = t0 + 590;
		CHECK_INT(queue_list(q, due_cb, &scan, &err), 0);
		if (scan.waiting == N)
			break;
		usleep(25000);
	}
	CHECK_INT(scan.total, N);
	CHECK_INT(scan.waiting, N);
	/* one try per delivery thread at most, not N */
	pthread_mutex_lock(&sink.mu);
	CHECK(sink.connections >= 1 && sink.connections <= 2);
	pthread_mutex_unlock(&sink.mu);
	CHECK(scan.untried >= N - 2);
	/* new mail for it waits too, without a try */
	for (int i = 0; i < 10; i++)
		CHECK_INT(queue_enqueue(q, &env, msg, strlen(msg), id, NULL,
					&err), 0);
	for (int i = 0; i < 2400; i++) {
		memset(&scan, 0, sizeof(scan));
		scan.until = t0 + 590;
		CHECK_INT(queue_list(q, due_cb, &scan, &err), 0);
		if (scan.waiting == N + 10)
			break;
		usleep(25000);
	}
	CHECK_INT(scan.waiting, N + 10);
	pthread_mutex_lock(&sink.mu);
	CHECK(sink.connections <= 2);
	sink.refuse = false;
	pthread_mutex_unlock(&sink.mu);
	/* the admin's retry: tried at once, and it is back */
	CHECK_INT(queue_retry(q, NULL, &err), 0);
	CHECK(wait_listed(q, 0));
	pthread_mutex_lock(&sink.mu);
	CHECK_INT(sink.messages, N + 10);
	pthread_mutex_unlock(&sink.mu);
	queue_close(&q);
	sink_stop(&sink);
	teardown();
}

/* Message files the backend does not know (a crash between the rename
 * and the commit) are removed once the runner runs, but only those named
 * before this run started: a younger one may be a message being queued. */
static void test_orphan_sweep(void)
{
	struct queue_settings set = settings(NULL);
	struct queue *q;
	struct queue_error err = {0};
	struct queue_rcpt rcpt = {.address = "b@remote.test"};
	struct queue_envelope env = {.sender = "a@example.test", .rcpts = &rcpt,
				     .rcpt_count = 1};
	char id[QUEUE_ID_SIZE], old[512], young[512], kept[512];
	struct timeval tv;
	FILE *f;

	setup();
	set.smarthost = "127.0.0.1:9"; /* never reached: held below */
	CHECK_INT(queue_open(&set, &q, &err), 0);
	CHECK_INT(queue_enqueue(q, &env, msg, strlen(msg), id, NULL, &err), 0);
	CHECK_INT(queue_hold(q, id, &err), 0);
	gettimeofday(&tv, NULL);
	snprintf(old, sizeof(old), "%s/queue/msg/0000000000100000", tmpdir);
	snprintf(young, sizeof(young), "%s/queue/msg/%011llX00000", tmpdir,
		 (unsigned long long)tv.tv_sec * 1000 + 3600 * 1000);
	snprintf(kept, sizeof(kept), "%s/queue/msg/%s", tmpdir, id);
	f = fopen(old, "w");
	fputs("orphan", f);
	fclose(f);
	f = fopen(young, "w");
	fputs("being queued", f);
	fclose(f);
	CHECK_INT(queue_start(q, &err), 0);
	for (int i = 0; i < 2400 && access(old, F_OK) == 0; i++)
		usleep(25000);
	CHECK(access(old, F_OK) != 0);
	CHECK(access(young, F_OK) == 0);
	CHECK(access(kept, F_OK) == 0);
	queue_close(&q);
	teardown();
}

/* The hourly submission limits outlive a restart: a user who sent his
 * hour's messages (queued or only stored locally) is refused after the
 * queue is reopened too, and another user is not. */
static void test_rates_persist(void)
{
	struct queue_settings set = settings(NULL);
	struct queue *q;
	struct queue_error err = {0};
	struct queue_rcpt remote = {.address = "b@remote.test"};
	struct queue_rcpt local = {.address = "alice@example.test"};
	struct queue_envelope env = {.sender = "a@example.test",
				     .rcpts = &remote, .rcpt_count = 1,
				     .flags = QUEUE_F_SUBMISSION, .user_id = 7};
	struct queue_hooks hooks = {.is_local = is_local, .deliver = deliver};
	char id[QUEUE_ID_SIZE];

	setup();
	set.user_messages_per_hour = 3;
	CHECK_INT(queue_open(&set, &q, &err), 0);
	queue_set_hooks(q, &hooks);
	for (int i = 0; i < 3; i++)
		CHECK_INT(queue_enqueue(q, &env, msg, strlen(msg), id, NULL,
					&err), 0);
	CHECK_INT(queue_enqueue(q, &env, msg, strlen(msg), id, NULL, &err), -1);
	CHECK_INT(err.kind, QUEUE_ERR_RATE);
	/* user 8 sends to a local recipient only: nothing is queued */
	env.user_id = 8;
	env.rcpts = &local;
	for (int i = 0; i < 3; i++) {
		CHECK_INT(queue_enqueue(q, &env, msg, strlen(msg), id, NULL,
					&err), 0);
		CHECK_STR(id, "");
	}
	queue_close(&q);

	CHECK_INT(queue_open(&set, &q, &err), 0);
	queue_set_hooks(q, &hooks);
	CHECK(!queue_user_within_limits(q, 7, 1, 1));
	CHECK(!queue_user_within_limits(q, 8, 1, 1));
	CHECK(queue_user_within_limits(q, 9, 1, 1));
	memset(&err, 0, sizeof(err));
	CHECK_INT(queue_enqueue(q, &env, msg, strlen(msg), id, NULL, &err), -1);
	CHECK_INT(err.kind, QUEUE_ERR_RATE);
	env.user_id = 7;
	env.rcpts = &remote;
	CHECK_INT(queue_enqueue(q, &env, msg, strlen(msg), id, NULL, &err), -1);
	CHECK_INT(err.kind, QUEUE_ERR_RATE);
	env.user_id = 9;
	CHECK_INT(queue_enqueue(q, &env, msg, strlen(msg), id, NULL, &err), 0);
	queue_close(&q);
	teardown();
}

/* MTA-STS (RFC 8461): the policy file and the TXT record, strictly; mx
 * patterns match one label for "*." */
static void test_mtasts_parse(void)
{
	struct qsts_policy p;
	char why[100], id[QSTS_ID_MAX + 1];
	const char *t = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\n"
			"mx: *.example.net\r\nmax_age: 86400\r\nextension: x\r\n";
	CHECK_INT(qsts_policy_parse(t, strlen(t), &p, why, sizeof(why)), 0);
	CHECK_INT(p.mode, QSTS_ENFORCE);
	CHECK_INT(p.mx_count, 2);
	CHECK_INT(p.max_age, 86400);
	CHECK(qsts_mx_matches(&p, "mail.example.com"));
	CHECK(qsts_mx_matches(&p, "MAIL.example.com."));
	CHECK(qsts_mx_matches(&p, "mx1.example.net"));
	CHECK(!qsts_mx_matches(&p, "a.mx1.example.net"));
	CHECK(!qsts_mx_matches(&p, "example.net"));
	CHECK(!qsts_mx_matches(&p, "evil-mail.example.com"));
	qsts_policy_free(&p);
	static const char *const bad[] = {
		"version: STSv1\nmode: enforce\nmax_age: 1\n",          /* no mx */
		"version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n",
		"version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a.b\n",              /* no max_age */
		"version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n",
		"version: STSv1\nmode enforce\n",
		"", NULL,
	};
	for (size_t i = 0; bad[i] != NULL; i++)
		CHECK_INT(qsts_policy_parse(bad[i], strlen(bad[i]), &p, why,
					    sizeof(why)), -1);
	t = "version: STSv1\nmode: none\nmax_age: 5\n";
	CHECK_INT(qsts_policy_parse(t, strlen(t), &p, why, sizeof(why)), 0);
	CHECK_INT(p.mode, QSTS_NONE);
	qsts_policy_free(&p);
	CHECK_INT(qsts_txt_id("v=STSv1; id=20160831085700Z;", 28, id), 0);
	CHECK_STR(id, "20160831085700Z");
	CHECK_INT(qsts_txt_id("v=STSv1; id=a-b", 15, id), -1);
	CHECK_INT(qsts_txt_id("v=STSv1", 7, id), -1);
	CHECK_INT(qsts_txt_id("v=STSv10; id=a", 14, id), -1);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"enqueue_durable_admin", test_enqueue_durable_admin},
		{"smarthost_delivery", test_smarthost_delivery},
		{"dead_destination", test_dead_destination},
		{"rates_persist", test_rates_persist},
		{"orphan_sweep", test_orphan_sweep},
		{"mtasts_parse", test_mtasts_parse},
		{NULL, NULL},
	};
	return test_main(cases);
}
