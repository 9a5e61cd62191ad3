/*
 * loftd's own verbs on the control socket (src/control): ending an
 * account's sessions for `loftctl kick` and `loftctl user del`; who the
 * login throttle holds back, for `loftctl ban`. Other modules register
 * theirs where they are created.
 */
#include "control-verbs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "auth.h"
#include "control.h"
#include "log.h"
#include "store.h"

/* How long kick waits for the sessions to be gone before it answers. */
#define KICK_WAIT_MS 2000

static int parse_id(const char *s, int64_t *id_r)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0 || s[0] == '+')
		return -1;
	*id_r = v;
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* kick USER_ID: every session of the account ends (IMAP BYE, POP3 -ERR);
 * answers once they are gone, so `user del` removes the mail only after
 * no session can touch it. */
static int verb_kick(void *ctx, int argc, char **argv,
		     struct control_reply *reply)
{
	struct store *store = ctx;
	int64_t id;
	if (argc != 1 || parse_id(argv[0], &id) < 0)
		return control_reply_error(reply, "usage: kick USER_ID");
	unsigned told = store_end_sessions(store, id);
	int64_t until = now_ms() + KICK_WAIT_MS;
	unsigned left;
	while ((left = store_subscriber_count(store, id)) > 0 &&
	       now_ms() < until) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	log_info("control", NULL, "kick user id %" PRId64 ": %u sessions told,"
		 " %u left", id, told, left);
	if (left > 0)
		return control_reply_error(reply, "%u of %u sessions still open "
					   "after %d ms", left, told,
					   KICK_WAIT_MS);
	control_reply_ok(reply, "%u sessions ended", told);
	return 0;
}

/* changed USER_ID: loftctl (undelete, import, restore) changed the
 * account's mail from its own process; its sessions here look now. */
static int verb_changed(void *ctx, int argc, char **argv,
			struct control_reply *reply)
{
	struct store *store = ctx;
	int64_t id;
	if (argc != 1 || parse_id(argv[0], &id) < 0)
		return control_reply_error(reply, "usage: changed USER_ID");
	unsigned told = 0;
	struct store_error err;
	if (store_changed_elsewhere(store, id, &told, &err) < 0)
		return control_reply_error(reply, "%s", err.msg);
	control_reply_ok(reply, "%u sessions told", told);
	return 0;
}

/* store quiesce USER_ID (loftctl migrate-store, which holds the
 * account's move lock): its sessions end with * BYE [UNAVAILABLE], and
 * the answer comes once nothing here holds the account open. */
#define QUIESCE_WAIT_MS 10000
static int verb_quiesce(void *ctx, int argc, char **argv,
			struct control_reply *reply)
{
	struct store *store = ctx;
	int64_t id;
	if (argc != 1 || parse_id(argv[0], &id) < 0)
		return control_reply_error(reply, "usage: store quiesce USER_ID");
	unsigned told = 0;
	struct store_error err;
	int rc = store_move_quiesce(store, id, QUIESCE_WAIT_MS, &told, &err);
	log_info("control", NULL, "quiesce user id %" PRId64 " for a move: "
		 "%u sessions told%s%s", id, told, rc < 0 ? ": " : "",
		 rc < 0 ? err.msg : "");
	if (rc < 0)
		return control_reply_error(reply, "%s", err.msg);
	control_reply_ok(reply, "%u sessions ended", told);
	return 0;
}

/* store release USER_ID (loftctl migrate-store, before it removes the
 * account's files on the side that does not serve it): this process's
 * handles there closed; no session ends. */
static int verb_release(void *ctx, int argc, char **argv,
			struct control_reply *reply)
{
	struct store *store = ctx;
	int64_t id;
	if (argc != 1 || parse_id(argv[0], &id) < 0)
		return control_reply_error(reply, "usage: store release USER_ID");
	unsigned closed = 0;
	struct store_error err;
	if (store_move_release(store, id, QUIESCE_WAIT_MS, &closed, &err) < 0)
		return control_reply_error(reply, "%s", err.msg);
	if (closed > 0)
		log_info("control", NULL, "release user id %" PRId64 ": %u "
			 "handles of the side not serving it closed", id,
			 closed);
	control_reply_ok(reply, "%u handles closed", closed);
	return 0;
}

void daemon_verbs_register(struct control *ctl, struct store *store)
{
	control_register(ctl, "kick", "USER_ID", verb_kick, store);
	control_register(ctl, "store quiesce", "USER_ID", verb_quiesce, store);
	control_register(ctl, "store release", "USER_ID", verb_release, store);
	control_register(ctl, "changed", "USER_ID", verb_changed, store);
}

/* ban list: one line per held address, account or pair
 * (auth_held_format). */
static void ban_line(void *ctx, const struct auth_held *held)
{
	char line[512];
	auth_held_format(held, line, sizeof(line));
	control_reply_line(ctx, "%s", line);
}

static int verb_ban_list(void *ctx, int argc, char **argv,
			 struct control_reply *reply)
{
	char *error = NULL;
	if (argc != 0)
		return control_reply_error(reply, "usage: ban list");
	if (auth_ban_list(ctx, ban_line, reply, &error) < 0) {
		control_reply_error(reply, "%s", error);
		free(error);
		return -1;
	}
	return 0;
}

/* ban del ADDRESS|ACCOUNT: "ok cleared" or "ok nothing held back". */
static int verb_ban_del(void *ctx, int argc, char **argv,
			struct control_reply *reply)
{
	char *error = NULL;
	if (argc != 1)
		return control_reply_error(reply, "usage: ban del ADDRESS|ACCOUNT");
	int rc = auth_ban_del(ctx, argv[0], &error);
	if (rc < 0) {
		control_reply_error(reply, "%s", error);
		free(error);
		return -1;
	}
	control_reply_ok(reply, "%s", rc > 0 ? "cleared" : "nothing held back");
	return 0;
}

void daemon_ban_verbs_register(struct control *ctl, struct auth *auth)
{
	control_register(ctl, "ban list", "", verb_ban_list, auth);
	control_register(ctl, "ban del", "ADDRESS|ACCOUNT", verb_ban_del, auth);
}
