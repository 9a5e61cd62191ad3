/*
 * Reports of loftctl import and export: a progress line on a terminal
 * (messages, bytes, rate, ETA when the total is known), a summary per
 * folder, every failure with its folder and message; with --json the
 * same as one JSON object per line (jansson).
 */
#include "migrate-private.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

unsigned migrate_role_of(const char *name)
{
	static const struct {
		const char *name;
		unsigned role;
	} known[] = {
		{"Sent", STORE_SPECIAL_SENT},
		{"Sent Messages", STORE_SPECIAL_SENT},
		{"Sent Items", STORE_SPECIAL_SENT},
		{"Sent Mail", STORE_SPECIAL_SENT},
		{"Drafts", STORE_SPECIAL_DRAFTS},
		{"Trash", STORE_SPECIAL_TRASH},
		{"Deleted Messages", STORE_SPECIAL_TRASH},
		{"Deleted Items", STORE_SPECIAL_TRASH},
		{"Junk", STORE_SPECIAL_JUNK},
		{"Spam", STORE_SPECIAL_JUNK},
		{"Junk E-mail", STORE_SPECIAL_JUNK},
		{"Archive", STORE_SPECIAL_ARCHIVE},
		{"Archives", STORE_SPECIAL_ARCHIVE},
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcasecmp(name, known[i].name) == 0)
			return known[i].role;
	return 0;
}

static void json_line(struct migrate *m, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (s != NULL) {
		fprintf(m->out, "%s\n", s);
		fflush(m->out);
		free(s);
	}
	json_decref(o);
}

static void progress_clear(struct migrate *m)
{
	if (m->progress && m->last_progress_ns != 0) {
		fprintf(m->err, "\r\033[K");
		fflush(m->err);
	}
}

void migrate_start(struct migrate *m)
{
	m->started_ns = now_ns();
	m->last_progress_ns = 0;
	if (m->out == NULL)
		m->out = stdout;
	if (m->err == NULL)
		m->err = stderr;
}

void migrate_error(struct migrate *m, const char *folder, const char *item,
		   const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	m->problems++;
	if (m->json) {
		json_t *o = json_pack("{s:s, s:s}", "type", "error", "error", msg);
		if (folder != NULL)
			json_object_set_new(o, "folder", json_string(folder));
		if (item != NULL)
			json_object_set_new(o, "item", json_string(item));
		json_line(m, o);
		return;
	}
	progress_clear(m);
	fprintf(m->err, "loftctl: %s%s%s%s%s\n", folder ? folder : "",
		folder ? ": " : "", item ? item : "", item ? ": " : "", msg);
}

void migrate_folder_begin(struct migrate *m, const char *name)
{
	m->cur = xcalloc(1, sizeof(*m->cur));
	m->cur->name = xstrdup(name);
}

void migrate_folder_end(struct migrate *m)
{
	migrate_msg_flush(m);
	struct migrate_folder_stats *f = m->cur;
	if (f == NULL)
		return;
	if (m->json) {
		json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I,"
				       " s:b, s:b, s:I, s:I}",
				       "type", "folder", "folder", f->name,
				       "imported", (json_int_t)f->imported,
				       "skipped", (json_int_t)f->skipped,
				       "failed", (json_int_t)f->failed,
				       "bytes", (json_int_t)f->bytes,
				       "renumbered", (json_int_t)f->renumbered,
				       "flags_updated",
				       (json_int_t)f->flags_updated,
				       "uids_kept", f->uids_kept,
				       "dry_run", m->dry_run,
				       "changedsince", (json_int_t)f->changedsince,
				       "expunged", (json_int_t)f->expunged);
		/* a backup's account unchanged since the newest snapshot */
		if (o != NULL && f->referenced)
			json_object_set_new(o, "referenced", json_true());
		json_line(m, o);
	} else {
		progress_clear(m);
		if (f->referenced) {
			fprintf(m->out, "%s: unchanged since the last run"
				" (referenced, nothing copied)\n", f->name);
			goto done;
		}
		if (m->exporting) {
			fprintf(m->out, "%s: %llu exported, %llu failed\n",
				f->name, (unsigned long long)f->imported,
				(unsigned long long)f->failed);
			goto done;
		}
		fprintf(m->out, "%s: %llu %s, %llu already there, %llu failed"
			"%s%s%s", f->name, (unsigned long long)f->imported,
			m->exporting ? "exported" :
			m->dry_run ? "to import" : "imported",
			(unsigned long long)f->skipped,
			(unsigned long long)f->failed,
			f->uids_kept ? " (UIDVALIDITY and UIDs kept)" : "",
			f->renumbered ? " (some got new UIDs)" : "",
			f->flags_updated ? ", flags updated" : "");
		if (f->changedsince > 0)
			fprintf(m->out, " (changes since MODSEQ %llu)",
				(unsigned long long)f->changedsince);
		if (f->expunged > 0)
			fprintf(m->out, ", %llu expunged (gone at the source)",
				(unsigned long long)f->expunged);
		fputc('\n', m->out);
done:
		fflush(m->out);
	}
	free(f->name);
	free(f);
	m->cur = NULL;
}

void migrate_count(struct migrate *m, uint64_t bytes, bool imported)
{
	if (imported) {
		m->imported++;
		m->bytes += bytes;
		if (m->cur != NULL) {
			m->cur->imported++;
			m->cur->bytes += bytes;
		}
	}
	if (!m->progress || m->json)
		return;
	uint64_t t = now_ns();
	if (m->last_progress_ns != 0 && t - m->last_progress_ns < 250000000u)
		return;
	m->last_progress_ns = t;
	double secs = (double)(t - m->started_ns) / 1e9;
	double rate = secs > 0 ? (double)m->imported / secs : 0;
	double mbs = secs > 0 ? (double)m->bytes / 1048576.0 / secs : 0;
	char eta[40] = "";
	double left = -1;
	/* by messages when the source said how many (imported, already
	 * there or failed: each is one done), else by bytes */
	uint64_t done = m->imported + m->skipped + m->failed;
	if (m->total_msgs > done && (done >= 50 || secs >= 1) && secs > 0)
		left = (double)(m->total_msgs - done) * secs / (double)done;
	else if (m->total_guess > m->bytes && mbs > 0)
		left = (double)(m->total_guess - m->bytes) / 1048576.0 / mbs;
	if (left >= 3600)
		snprintf(eta, sizeof(eta), ", ETA %uh%02um",
			 (unsigned)(left / 3600), (unsigned)(left / 60) % 60);
	else if (left >= 60)
		snprintf(eta, sizeof(eta), ", ETA %um%02us",
			 (unsigned)(left / 60), (unsigned)left % 60);
	else if (left >= 0)
		snprintf(eta, sizeof(eta), ", ETA %us", (unsigned)(left + 0.5));
	char there[48] = "";
	if (m->skipped > 0)
		snprintf(there, sizeof(there), " (%llu already there)",
			 (unsigned long long)m->skipped);
	fprintf(m->err, "\r\033[K%s: %llu messages%s, %.1f MB, %.0f msg/s,"
		" %.1f MB/s%s", m->cur ? m->cur->name : "",
		(unsigned long long)m->imported, there,
		(double)m->bytes / 1048576.0, rate, mbs, eta);
	fflush(m->err);
}

void migrate_finish(struct migrate *m, const char *what)
{
	migrate_msg_flush(m);
	migrate_batch_free(m);
	double secs = (double)(now_ns() - m->started_ns) / 1e9;
	if (m->json) {
		json_line(m, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f,"
				       " s:b}",
				       "type", "summary", "what", what,
				       "imported", (json_int_t)m->imported,
				       "skipped", (json_int_t)m->skipped,
				       "failed", (json_int_t)m->failed,
				       "problems", (json_int_t)m->problems,
				       "bytes", (json_int_t)m->bytes,
				       "seconds", secs, "dry_run", m->dry_run));
		return;
	}
	progress_clear(m);
	if (m->problems == 0 && m->failed == 0)
		return;
	/* verify and prune move no message: only their problems */
	const char *done = strcmp(what, "export") == 0 ||
				   strcmp(what, "backup") == 0 ? "exported"
			   : strcmp(what, "restore") == 0 ? "restored"
			   : strcmp(what, "import") == 0 ? "imported" : NULL;
	if (done == NULL)
		fprintf(m->err, "loftctl: %s: %llu problems (see above)\n",
			what, (unsigned long long)m->problems);
	else
		fprintf(m->err, "loftctl: %s: %llu messages %s, %llu failed,"
			" %llu problems (see above)\n", what,
			(unsigned long long)m->imported, done,
			(unsigned long long)m->failed,
			(unsigned long long)m->problems);
}
