/*
 * Fuzz target for the POP3 front-end (src/pop3): the command line reader,
 * the dispatcher and every command's argument parsing (message numbers,
 * TOP counts, USER/PASS/APOP/AUTH with SASL lines), through a real
 * session over a Unix socket (see fuzz-net-session.h).
 *
 * Input: [flags][bytes the client sends]. flags bit 0: log in first
 * (USER/PASS), so the TRANSACTION commands are reached at once.
 * The greeting must be "+OK", and no input may make the server answer
 * [SYS/TEMP] (with a healthy store, a client cannot cause one).
 */
#include "fuzz-net-session.h"
#include "pop3.h"

static void *create(const struct config *cfg, struct store *store,
		    struct auth *auth, struct buf *errors)
{
	return pop3_server_create(cfg, store, auth, errors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool started;
	if (!started) {
		fuzz_session_start("[pop3]\nlisten = unix:/unused\n"
				   "retention_interval = 1d\n",
				   create, &pop3_proto);
		started = true;
	}
	if (size < 1)
		return 0;
	fuzz_session_refill();
	size_t len;
	char *out = fuzz_session_run(
		data[0] & 1 ? "USER alice@example.test\r\nPASS fuzzing-secret-1\r\n" : "",
		data + 1, size - 1, &len);
	if (len < 4 || strncmp(out, "+OK ", 4) != 0)
		abort();   /* the greeting */
	/* at the start of a line: the client cannot append messages, so
	 * no multi-line reply holds one */
	if ((len >= 15 && memcmp(out, "-ERR [SYS/TEMP]", 15) == 0) ||
	    memmem(out, len, "\r\n-ERR [SYS/TEMP]", 17) != NULL) {
		fwrite(out, 1, len, stderr);
		abort();
	}
	free(out);
	return 0;
}
