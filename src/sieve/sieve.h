/*
 * Sieve (RFC 5228 and the extensions Loft offers): a pure module, no I/O.
 *
 * sieve_compile() turns a script's text into a compiled form: one
 * contiguous byte image (sieve_script_image) that the store keeps beside
 * the source, so a delivery never parses text again; sieve_script_load()
 * takes such an image back after checking every index in it. Every
 * syntax or validation error is reported with its line and column.
 *
 * sieve_execute() runs compiled scripts against one message: the
 * envelope, the message bytes (headers decoded as RFC 5228 2.7 says,
 * through src/mail) and callbacks into the store (mailbox existence,
 * duplicate records, included scripts); it returns the list of actions
 * for the delivery module to apply. The run is bounded by a
 * deterministic step budget (limits.max_steps), never by wall time. A
 * run-time error returns no actions and an error at a line: the caller
 * keeps the message in INBOX as if no script had run.
 *
 * Also pure and here: the checks RFC 5230 4.5 / RFC 3834 make before a
 * vacation reply, and the bytes of vacation replies and RFC 5429
 * refusals (the caller puts them in the queue).
 */
#ifndef LOFT_SIEVE_H
#define LOFT_SIEVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

/* The extensions, in the order of the SIEVE capability string. */
#define SIEVE_EXTENSIONS                                                    \
	"fileinto reject ereject envelope encoded-character imap4flags "   \
	"body variables vacation vacation-seconds relational "             \
	"comparator-i;ascii-numeric subaddress date index copy mailbox "   \
	"include editheader duplicate spamtest spamtestplus virustest "    \
	"environment"

/* Limits ([sieve] in loftd.conf), checked at compile time or counted at
 * run time. */
struct sieve_limits {
	size_t max_script_size;      /* bytes of source; default 1 MiB */
	unsigned max_actions;        /* actions per run; default 32 */
	unsigned max_redirects;      /* redirects per run; default 4 */
	unsigned max_include_depth;  /* nested includes; default 10 */
	size_t max_variable_size;    /* bytes of one variable; default 4 KiB */
	unsigned max_nesting;        /* blocks and tests inside each other;
					default 32 */
	uint64_t max_steps;          /* step budget per message (all
					scripts of a delivery); default
					20,000,000 */
	size_t max_list_items;       /* items of one string list;
					default 100,000 */
};
void sieve_limits_default(struct sieve_limits *limits);

/* ---- compiling ---------------------------------------------------- */

struct sieve_error {
	unsigned line, column;      /* 1-based */
	char message[240];
};
struct sieve_errors {
	struct sieve_error *items;
	size_t count;
	struct sieve_error *warnings;
	size_t warning_count;
};
void sieve_errors_free(struct sieve_errors *errors);

struct sieve_script;

/* Compiles text/len. Returns the script, or NULL with at least one error
 * in *errors_r (at most 20 are reported; the first is the one to show).
 * errors_r may also hold warnings when a script is returned. limits
 * NULL means the defaults. name is kept for messages ("main",
 * "before.sieve"). */
struct sieve_script *sieve_compile(const char *text, size_t len,
				   const char *name,
				   const struct sieve_limits *limits,
				   struct sieve_errors *errors_r);
/* The compiled image (what the store keeps) and a script from an image
 * (copied). NULL if the image is not one this build wrote or is
 * damaged. */
const void *sieve_script_image(const struct sieve_script *s, size_t *len_r);
struct sieve_script *sieve_script_load(const void *image, size_t len,
				       const char *name);
const char *sieve_script_name(const struct sieve_script *s);
/* Whether the script may send replies (vacation) - for the webmail's
 * "your active script also replies". */
bool sieve_script_uses(const struct sieve_script *s, const char *extension);
void sieve_script_free(struct sieve_script **s);

/* Formats errors one per line, "PREFIXline L, column C: message\n". */
void sieve_errors_format(const struct sieve_errors *errors,
			 const char *prefix, struct buf *out);

/* ---- running ------------------------------------------------------ */

/* The store's answers during a run; each may be NULL (then: mailbox
 * always exists, nothing is a duplicate, include fails). */
struct sieve_callbacks {
	/* mailboxexists, fileinto without :create. */
	bool (*mailbox_exists)(void *ctx, const char *mailbox);
	/* duplicate (RFC 7352): whether id was recorded within its period;
	 * the record itself is an action the delivery commits. */
	bool (*duplicate_seen)(void *ctx, const char *id);
	/* include: the compiled script of that name (personal or global),
	 * owned by the caller until the run ends; NULL if there is none. */
	const struct sieve_script *(*include)(void *ctx, bool global,
					      const char *name);
};

struct sieve_input {
	/* RFC 5321 envelope: MAIL FROM ("" for <>), RCPT TO as given
	 * (with its +detail) */
	const char *env_from;
	const char *env_to;
	const char *auth_user;    /* authenticated submitter, or NULL */
	/* The message as received (CRLF or LF lines). */
	const char *data;
	size_t len;
	/* environment (RFC 5183) */
	const char *domain, *host, *remote_host, *remote_ip;
	time_t now;               /* currentdate, vacation clock */
	int tz_offset;            /* local zone, minutes east of UTC */
	/* spamtest / virustest (RFC 5235): the scanner's verdict */
	bool spam_scanned;
	double spam_score, spam_threshold;
	int virus_status;         /* virustest's value, 0 (not tested) to 5
				     (RFC 5235 3.2) */
	/* body :text's text when the caller has it already (the store's
	 * analysis of the message: every text part decoded to UTF-8, as
	 * mail_analyze's MAIL_TEXT_BODY); NULL: the executor makes it */
	const char *body_text;
	size_t body_text_len;
	/* subaddress separator; default "+" */
	const char *separator;
	const struct sieve_callbacks *cb;
	void *cb_ctx;
};

enum sieve_action_kind {
	SIEVE_ACT_KEEP,        /* keep (explicit, or the implicit one) */
	SIEVE_ACT_FILEINTO,
	SIEVE_ACT_REDIRECT,
	SIEVE_ACT_DISCARD,
	SIEVE_ACT_REJECT,      /* RFC 5429 2.2: a refusal message */
	SIEVE_ACT_EREJECT,     /* RFC 5429 2.1: refuse in the protocol */
	SIEVE_ACT_VACATION,
	SIEVE_ACT_DUPLICATE,   /* record an id (RFC 7352) */
};

struct sieve_action {
	enum sieve_action_kind kind;
	unsigned line;               /* in the script that made it */
	unsigned script;             /* index into the scripts run */
	char *mailbox;               /* fileinto (UTF-8 name) */
	bool create;                 /* :create */
	bool copy;                   /* :copy */
	char **flags;                /* keep/fileinto: the flags */
	size_t flag_count;
	char *address;               /* redirect target */
	char *text;                  /* reject reason, vacation reason */
	/* vacation */
	char *subject, *from, *handle;
	char **addresses;
	size_t address_count;
	bool mime;
	uint64_t seconds;            /* vacation period / duplicate period */
	/* duplicate: the id recorded (a digest of handle and value) */
	char *id;
};

struct sieve_result {
	struct sieve_action *actions;
	size_t count;
	/* The edited header block when editheader changed it (CRLF lines,
	 * blank line included; the body follows unchanged), else NULL. */
	char *header;
	size_t header_len;
	bool error;                  /* a run-time error or limit */
	unsigned error_script;       /* which script of the sequence */
	unsigned error_line;
	char error_text[240];
	uint64_t steps;              /* budget used */
};
void sieve_result_free(struct sieve_result *r);

/* Runs scripts in order with Pigeonhole's sequential rules (the admin's
 * before scripts, the user's, the admin's after): each script's actions
 * are collected; a script that cancels the implicit keep without a keep
 * ends the sequence; a keep (explicit or implicit) of any script but the
 * last only lets the next one run. The result always says where the
 * message goes: a KEEP action when it is kept. limits NULL: defaults.
 * Returns 0, or -1 with r->error set (then r has no actions: keep the
 * message in INBOX as if no script had run). */
int sieve_execute(const struct sieve_script *const *scripts, size_t count,
		  const struct sieve_input *in,
		  const struct sieve_limits *limits, struct sieve_result *r);

/* Prints the actions, one per line (loftctl sieve test). */
void sieve_result_format(const struct sieve_result *r, struct buf *out);

/* ---- replies ------------------------------------------------------- */

/* The checks of sieve_vacation_refusal that need no own addresses (the
 * sender, List-*, Precedence, Auto-Submitted, no To/Cc/Bcc/Resent-* at
 * all): a caller makes them before reading the user's addresses. */
const char *sieve_vacation_refusal_early(const char *data, size_t len,
					 const char *env_from);
/* RFC 5230 4.5 and RFC 3834 2: whether a vacation reply may go to this
 * message at all. own: the recipient's own addresses (and aliases),
 * with :addresses added by the caller from the action. NULL: it may;
 * else a short reason for the log. */
const char *sieve_vacation_refusal(const char *data, size_t len,
				   const char *env_from,
				   const char *const *own, size_t own_count);
/* The reply (RFC 5230 5, RFC 3834 3): From the address the message came
 * to (or :from), To the sender, Subject "Auto: " and the original's
 * (or :subject), In-Reply-To and References, Auto-Submitted:
 * auto-replied, the reason as text/plain UTF-8 (or as MIME given with
 * :mime). recipient: the address the message came to. */
void sieve_vacation_compose(const struct sieve_action *a, const char *data,
			    size_t len, const char *env_from,
			    const char *recipient, const char *hostname,
			    time_t now, struct buf *out);
/* The refusal of RFC 5429 2.2: a multipart/report MDN with disposition
 * "automatic-action/MDN-sent-automatically; deleted", the reason and the
 * original header. */
void sieve_reject_compose(const char *reason, const char *data, size_t len,
			  const char *env_from, const char *recipient,
			  const char *hostname, time_t now, struct buf *out);

#endif
