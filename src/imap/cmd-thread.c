/*
 * THREAD and UID THREAD (RFC 5256): a search, one store pass for the
 * cached threading fields (base subject, Message-ID, In-Reply-To,
 * References, sent date) and the ENVELOPE subject (whether the subject
 * was a reply or forward, which step 5 of REFERENCES needs), then
 * imap-thread.c.
 */
#include "imap-client.h"
#include "imap-search.h"
#include "imap-thread.h"
#include "mail.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The subject of an ENVELOPE, raw (encoded words kept). */
static bool envelope_subject(const char *env, struct buf *out)
{
	const char *p = imap_envelope_find(env, IMAP_ENV_SUBJECT);
	bool nil;
	buf_reset(out);
	return p != NULL && imap_envelope_value(&p, out, &nil) && !nil;
}

static bool ci_prefix(const char *s, const char *lit)
{
	return strncasecmp(s, lit, strlen(lit)) == 0;
}

/* RFC 5256 2.1: whether base subject extraction removes a subj-refwd,
 * a "(fwd)" trailer or a "[fwd: ...]" wrapper, i.e. the message is a
 * reply or a forward. s is the decoded subject. */
static bool subject_is_reply(const char *s)
{
	size_t len = strlen(s);
	bool changed = true;
	while (changed) {
		changed = false;
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len >= 5 && strncasecmp(s + len - 5, "(fwd)", 5) == 0)
			return true;
		while (len > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			len--;
		}
		const char *p = s;
		if (ci_prefix(p, "re"))
			p += 2;
		else if (ci_prefix(p, "fwd"))
			p += 3;
		else if (ci_prefix(p, "fw"))
			p += 2;
		if (p != s) {
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '[') {
				const char *q = strchr(p, ']');
				if (q != NULL)
					p = q + 1;
			}
			if (*p == ':')
				return true;
		}
		if (ci_prefix(s, "[fwd:") && len > 0 && s[len - 1] == ']')
			return true;
		/* a leading subj-blob "[list]" goes if something remains */
		if (*s == '[') {
			const char *q = memchr(s, ']', len);
			if (q != NULL && (size_t)(q + 1 - s) < len) {
				len -= (size_t)(q + 1 - s);
				s = q + 1;
				changed = true;
			}
		}
	}
	return false;
}

struct thread_strings {
	char *subject, *message_id, *in_reply_to, *references;
};

static void free_strings(struct thread_strings *st, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(st[i].subject);
		free(st[i].message_id);
		free(st[i].in_reply_to);
		free(st[i].references);
	}
	free(st);
}

static int gather(struct imap_client *c, const struct imap_search_result *res,
		  bool uid, struct imap_thread_msg *msgs,
		  struct thread_strings *st, struct store_error *err)
{
	struct store_uid_range *ranges = calloc(res->count ? res->count : 1,
						sizeof(*ranges));
	size_t k = 0, j = 0;
	struct store_fetch *f;
	const struct store_msg *m;
	struct buf subj, dec;
	int ret;

	if (ranges == NULL)
		abort();
	for (size_t i = 0; i < res->count; i++) {
		msgs[i].seq = res->seqs[i];
		msgs[i].number = uid ? res->uids[i] : res->seqs[i];
		if (k > 0 && ranges[k - 1].hi + 1 == res->uids[i])
			ranges[k - 1].hi = res->uids[i];
		else
			ranges[k++] = (struct store_uid_range){res->uids[i],
							       res->uids[i]};
	}
	if (store_fetch_begin(imap_client_sel_user(c), c->mailbox, ranges, k,
			      STORE_FETCH_SIZE | STORE_FETCH_SORT |
			      STORE_FETCH_ENVELOPE, &f, err) < 0) {
		free(ranges);
		return -1;
	}
	buf_init(&subj, 0);
	buf_init(&dec, 0);
	while ((ret = store_fetch_next(f, &m, err)) == 1) {
		while (j < res->count && res->uids[j] < m->uid)
			j++;
		if (j == res->count)
			break;
		if (res->uids[j] != m->uid)
			continue;
		struct imap_thread_msg *t = &msgs[j];
		t->sent_date = m->sent_date != 0 ? m->sent_date : m->internaldate;
		st[j].subject = xstrdup(m->sort_subject ? m->sort_subject : "");
		st[j].message_id = xstrdup(m->message_id ? m->message_id : "");
		st[j].in_reply_to = xstrdup(m->in_reply_to ? m->in_reply_to : "");
		st[j].references = xstrdup(m->references ? m->references : "");
		if (envelope_subject(m->envelope, &subj)) {
			buf_reset(&dec);
			mail_header_decode(&dec, slice_make(subj.data ? subj.data : "",
							    subj.len));
			t->is_reply = subject_is_reply(dec.data ? dec.data : "");
		}
	}
	buf_free(&subj);
	buf_free(&dec);
	store_fetch_end(&f);
	free(ranges);
	for (size_t i = 0; i < res->count; i++) {
		msgs[i].base_subject = st[i].subject;
		msgs[i].message_id = st[i].message_id;
		msgs[i].in_reply_to = st[i].in_reply_to;
		msgs[i].references = st[i].references;
	}
	return ret < 0 ? -1 : 0;
}

void cmd_thread(struct imap_cmd *cmd)
{
	struct imap_client *c = cmd->client;
	const struct imap_arg *args = cmd->args;
	enum imap_thread_algorithm alg;
	struct imap_search_program *prog = NULL;
	struct imap_search_result res;
	struct store_error err = {0};

	if (args[0].type != IMAP_ARG_ATOM ||
	    imap_thread_algorithm_parse(args[0].str.ptr, args[0].str.len,
					&alg) < 0) {
		imap_cmd_bad(cmd, "Unknown threading algorithm");
		return;
	}
	if (search_prepare(cmd, args + 1, true, &prog) < 0)
		return;
	if (search_execute(cmd, prog, &res) < 0) {
		imap_search_program_free(&prog);
		return;
	}
	struct imap_thread_msg *msgs = calloc(res.count ? res.count : 1,
					      sizeof(*msgs));
	struct thread_strings *st = calloc(res.count ? res.count : 1,
					   sizeof(*st));
	if (msgs == NULL || st == NULL)
		abort();
	if (gather(c, &res, cmd->uid, msgs, st, &err) < 0) {
		free_strings(st, res.count);
		free(msgs);
		imap_search_result_free(&res);
		imap_search_program_free(&prog);
		imap_cmd_store_error(cmd, &err);
		return;
	}
	struct buf line;
	buf_init(&line, 0);
	buf_append_str(&line, "* THREAD");
	if (res.count > 0) {
		buf_append_char(&line, ' ');
		imap_thread_build(alg, msgs, (uint32_t)res.count, &line);
	}
	search_write_line(c, &line);
	buf_free(&line);
	free_strings(st, res.count);
	free(msgs);
	imap_search_result_free(&res);
	imap_search_program_free(&prog);
	imap_cmd_ok(cmd, "%sTHREAD completed", cmd->uid ? "UID " : "");
}
