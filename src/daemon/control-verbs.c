/*
 * loftd's own verbs on the control socket (src/control): ending an
 * account's sessions for `loftctl kick` and `loftctl user del`. Other
 * modules register theirs where they are created.
 */
#include "control-verbs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

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

void daemon_verbs_register(struct control *ctl, struct store *store)
{
	control_register(ctl, "kick", "USER_ID", verb_kick, store);
}
