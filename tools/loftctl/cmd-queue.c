/*
 * loftctl queue list|show|retry|delete|hold|release: the outbound queue
 * (src/queue/queue.h), on its files directly whether loftd runs or not; a
 * running loftd notices the change within a second (the queue database's
 * data_version) and acts on it.
 */
#include "loftctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "queue.h"
#include "queue-store.h"

struct queue *loftctl_open_queue(struct loftctl *ctl)
{
	struct queue_settings set;
	struct queue *q;
	struct queue_error err = {0};
	struct buf errors;

	buf_init(&errors, 0);
	if (queue_settings_from_config(ctl->cfg, &set, &errors) < 0) {
		char *nl = strchr(errors.data, '\n');
		if (nl != NULL)
			*nl = '\0';
		loftctl_fail("%s", errors.data);
		buf_free(&errors);
		return NULL;
	}
	buf_free(&errors);
	/* blobs = s3: the messages' bytes are the store's objects (and the
	 * store's schema comes before the queue's) */
	struct store *store = set.objects ? loftctl_store(ctl) : NULL;
	if (set.objects && store == NULL)
		return NULL;
	if (queue_open(&set, &q, &err) < 0) {
		loftctl_fail("cannot open the queue: %s", err.msg);
		return NULL;
	}
	if (queue_store_attach(q, store) < 0) {
		loftctl_fail("cannot open the queue: the store has no object "
			     "store");
		queue_close(&q);
		return NULL;
	}
	return q;
}

static void when(time_t t, char *out, size_t size)
{
	struct tm tm;

	if (t == 0 || t <= time(NULL)) {
		snprintf(out, size, "now");
		return;
	}
	if (t >= (time_t)1 << 59) {
		snprintf(out, size, "held");
		return;
	}
	localtime_r(&t, &tm);
	strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm);
}

static bool list_one(void *ctx, const struct queue_message_info *m)
{
	char next[32];
	time_t first = 0;

	for (size_t i = 0; i < m->rcpt_count; i++)
		if (first == 0 || m->rcpts[i].next_attempt < first)
			first = m->rcpts[i].next_attempt;
	when(first, next, sizeof(next));
	printf("%s  <%s>  next: %s%s\n", m->id, m->sender,
	       m->held ? "held" : next, "");
	for (size_t i = 0; i < m->rcpt_count; i++)
		printf("    <%s>%s%s\n", m->rcpts[i].address,
		       m->rcpts[i].last_error ? "  " : "",
		       m->rcpts[i].last_error ? m->rcpts[i].last_error : "");
	return true;
}

static int queue_list_cmd(struct loftctl *ctl, int argc, char **argv)
{
	struct queue *q;
	struct queue_error err = {0};
	int rc = 0;

	if (argc != 0)
		return loftctl_usage(&loftctl_queue_cmds[0]);
	if ((q = loftctl_open_queue(ctl)) == NULL)
		return LOFTCTL_EXIT_FAIL;
	if (queue_list(q, list_one, NULL, &err) < 0)
		rc = loftctl_fail("%s", err.msg);
	queue_close(&q);
	return rc;
}

static const char *status_name(enum queue_rcpt_status s)
{
	switch (s) {
	case QUEUE_RCPT_DELIVERED: return "delivered";
	case QUEUE_RCPT_FAILED: return "failed";
	default: return "pending";
	}
}

static int queue_show_cmd(struct loftctl *ctl, int argc, char **argv)
{
	struct queue *q;
	struct queue_error err = {0};
	struct queue_message_info *m = NULL;
	bool body = loftctl_take_flag(&argc, argv, "--body");
	char created[64], next[32];
	struct tm tm;
	int rc = 0;

	if (argc != 1)
		return loftctl_usage(&loftctl_queue_cmds[1]);
	if ((q = loftctl_open_queue(ctl)) == NULL)
		return LOFTCTL_EXIT_FAIL;
	if (queue_message_get(q, argv[0], &m, &err) < 0) {
		rc = loftctl_fail("%s", err.msg);
		goto out;
	}
	localtime_r(&m->created, &tm);
	strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S", &tm);
	printf("id: %s\nsender: <%s>\nsize: %llu\nqueued: %s\n%s", m->id,
	       m->sender, (unsigned long long)m->size, created,
	       m->held ? "held: yes\n" : "");
	if (m->envid != NULL)
		printf("envid: %s\n", m->envid);
	for (size_t i = 0; i < m->rcpt_count; i++) {
		const struct queue_rcpt_info *r = &m->rcpts[i];
		when(r->next_attempt, next, sizeof(next));
		printf("recipient: <%s> %s attempts=%u", r->address,
		       status_name(r->status), r->attempts);
		if (r->status == QUEUE_RCPT_QUEUED)
			printf(" next=%s", m->held ? "held" : next);
		if (r->remote != NULL)
			printf(" relay=%s", r->remote);
		printf("\n");
		if (r->last_error != NULL)
			printf("    last reply: %d %s\n", r->code, r->last_error);
	}
	if (body) {
		char *data;
		size_t len;
		if (queue_message_data(q, argv[0], &data, &len, &err) < 0) {
			rc = loftctl_fail("%s", err.msg);
			goto out;
		}
		printf("\n");
		fwrite(data, 1, len, stdout);
		free(data);
	}
out:
	queue_message_info_free(&m);
	queue_close(&q);
	return rc;
}

/* retry/delete/hold/release ID...; retry --all. */
static int queue_act(struct loftctl *ctl, int argc, char **argv,
		     const struct loftctl_cmd *cmd,
		     int (*fn)(struct queue *, const char *, struct queue_error *),
		     const char *done)
{
	bool all = strcmp(cmd->verb, "retry") == 0 &&
		   loftctl_take_flag(&argc, argv, "--all");
	struct queue *q;
	int rc = 0;

	if ((argc == 0) != all)
		return loftctl_usage(cmd);
	if ((q = loftctl_open_queue(ctl)) == NULL)
		return LOFTCTL_EXIT_FAIL;
	if (all) {
		struct queue_error err = {0};
		if (fn(q, NULL, &err) < 0)
			rc = loftctl_fail("%s", err.msg);
		else
			printf("every queued message %s\n", done);
	}
	for (int i = 0; i < argc; i++) {
		struct queue_error err = {0};
		if (fn(q, argv[i], &err) < 0)
			rc = loftctl_fail("%s", err.msg);
		else
			printf("%s %s\n", argv[i], done);
	}
	queue_close(&q);
	return rc;
}

static int queue_retry_cmd(struct loftctl *ctl, int argc, char **argv)
{
	return queue_act(ctl, argc, argv, &loftctl_queue_cmds[2], queue_retry,
			 "will be retried now");
}

static int queue_delete_cmd(struct loftctl *ctl, int argc, char **argv)
{
	return queue_act(ctl, argc, argv, &loftctl_queue_cmds[3], queue_delete,
			 "deleted");
}

static int queue_hold_cmd(struct loftctl *ctl, int argc, char **argv)
{
	return queue_act(ctl, argc, argv, &loftctl_queue_cmds[4], queue_hold,
			 "held");
}

static int queue_release_cmd(struct loftctl *ctl, int argc, char **argv)
{
	return queue_act(ctl, argc, argv, &loftctl_queue_cmds[5], queue_release,
			 "released");
}

const struct loftctl_cmd loftctl_queue_cmds[] = {
	{"queue", "list", "", queue_list_cmd},
	{"queue", "show", "ID [--body]", queue_show_cmd},
	{"queue", "retry", "ID... | --all", queue_retry_cmd},
	{"queue", "delete", "ID...", queue_delete_cmd},
	{"queue", "hold", "ID...", queue_hold_cmd},
	{"queue", "release", "ID...", queue_release_cmd},
	{NULL, NULL, NULL, NULL},
};
