/*
 * IDLE (RFC 2177, RFC 9051 6.3.13). The command answers "+ idling" and
 * returns; the session then waits for "DONE" without holding a thread.
 * Changes committed by other sessions wake it through the store hub
 * (imap-client.c: client_store_changed -> a worker task -> sync), so
 * EXISTS, EXPUNGE/VANISHED and FETCH go out at once.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap-commands.h"
#include "imap-server.h"

void cmd_idle(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	if (cmd->args[0].type != IMAP_ARG_EOL) {
		imap_cmd_bad(cmd, "[CLIENTBUG] IDLE takes no arguments");
		return;
	}
	imap_client_write(c, "+ idling\r\n", 10);
	c->idling = true;
	c->input_mode = IMAP_MODE_IDLE;
	cmd->continues = true;
	/* what changed before IDLE began goes out now */
	if (c->view != NULL)
		imap_client_sync(c, true);
}


static void idle_done_task(void *session, struct net_conn *conn, void *arg)
{
	struct imap_client *c = session;
	bool done = arg != NULL;
	c->idling = false;
	c->cmd.continues = false;
	if (done)
		imap_cmd_ok(&c->cmd, "IDLE terminated");
	else
		imap_cmd_bad(&c->cmd, "[CLIENTBUG] Expected DONE");
	imap_client_after_command(c);
	c->task_running = false;
}

/* A line arrived while idling (I/O thread). */
void imap_client_idle_line(struct imap_client *c, const char *line, size_t len)
{
	bool done = len == 4 && strncasecmp(line, "DONE", 4) == 0;
	c->input_mode = IMAP_MODE_COMMAND;
	c->task_running = true;
	if (net_conn_run(c->conn, idle_done_task, done ? (void *)c : NULL) < 0)
		c->task_running = false;
}
