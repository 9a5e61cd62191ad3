/*
 * Fuzz target for the SMTP engine (src/smtp) on the MX listener: the
 * bounded command-line reader, the command table and its state checks
 * (EHLO/HELO, MAIL/RCPT with their paths and every parameter: SIZE, BODY,
 * SMTPUTF8, RET, ENVID, NOTIFY, ORCPT, REQUIRETLS), and the DATA/BDAT
 * state machine (dot decoding, chunk sizes that lie or overflow, BDAT
 * LAST, DATA after BDAT, the SIZE limit, the held header and the DKIM
 * verifier fed as the message arrives), with messages really delivered
 * to the store. A real session over a Unix socket (fuzz-net-session.h).
 *
 * Input: the bytes the client sends. The greeting must be "220 ", and no
 * input may make the server answer 451 4.3.0 (a local error: with a
 * healthy store a client cannot cause one) or hang (fuzz-net-session.h).
 */
#include "fuzz-net-session.h"
#include "smtp.h"

static void *create(const struct config *cfg, struct store *store,
		    struct auth *auth, struct buf *errors)
{
	return smtp_server_create(cfg, SMTP_MODE_MX, store, auth, errors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool started;
	if (!started) {
		/* sender_checks stay on: without a resolver no lookup is
		 * made, but the DKIM verifier parses what comes */
		fuzz_session_start("hostname = mx.example.test\n"
				   "[smtp]\nlisten = unix:/unused\n"
				   "max_message_size = 64k\n"
				   "max_recipients = 4\n"
				   "max_connections_per_ip = 0\n"
				   "max_messages_per_ip_per_hour = 0\n",
				   create, &smtp_mx_proto);
		started = true;
	}
	fuzz_session_refill();
	size_t len;
	char *out = fuzz_session_run("", data, size, &len);
	if (len < 4 || strncmp(out, "220 ", 4) != 0)
		abort();   /* the greeting */
	if (memmem(out, len, "\r\n451 4.3.0", 11) != NULL) {
		fwrite(out, 1, len, stderr);
		abort();
	}
	free(out);
	return 0;
}
