/*
 * Shared by the import and export drivers: progress, reports (text or
 * one JSON object per line), per-folder counts, well-known folder roles.
 */
#ifndef LOFT_MIGRATE_PRIVATE_H
#define LOFT_MIGRATE_PRIVATE_H

#include "migrate.h"

#include <time.h>

struct migrate_folder_stats {
	char *name;
	uint64_t imported, skipped, failed, bytes, renumbered, flags_updated;
	uint64_t expunged;       /* vanished at the source, expunged here */
	bool uids_kept;
	bool referenced;         /* backup: unchanged, the last manifest named */
	uint64_t changedsince;   /* IMAP: flags asked for changes since this
				    MODSEQ only (0: all of them) */
};

/* The special use a folder's name says (Sent, Sent Messages, Trash,
 * Deleted Items, Junk, Spam, Drafts, Archive ...; 0: none). */
unsigned migrate_role_of(const char *name);

/* One message as a source gives it (migrate-import.c). */
/* A message a restore stored with its source UID: the modseq it got. */
struct migrate_got {
	uint32_t uid;
	uint64_t modseq;
};

struct migrate_msg {
	const char *folder;
	const char *label;          /* file name or "message N" or "UID N" */
	uint32_t uid;               /* 0: none from the source */
	unsigned flags;
	const char *const *keywords;
	size_t keyword_count;
	time_t date;
	const char *pop3_uidl;
	const char *mark_source, *mark_id;
	const char *mark_renumbered;  /* the mark when the message gets
					 another UID than the source's
					 (NULL: mark_id) */
	uint64_t size;
	/* restore: kept with the UIDs (0: none) */
	uint64_t modseq;
	int64_t email, thread;
	time_t savedate;
	bool pop3_hidden;           /* POP3's marks as the source had them */
	time_t pop3_first_retr;
};
/* Makes a folder ready (role 0: by its name); *keep_r: the source's UIDs
 * can be kept. -1 after reporting. */
int migrate_folder_prepare(struct migrate *m, const char *name,
			   uint32_t uidvalidity, uint32_t uidnext,
			   unsigned role, bool subscribe, bool *keep_r);
/* After a folder's messages: UIDNEXT as at the source. */
void migrate_folder_done(struct migrate *m, const char *name,
			 uint32_t uidvalidity, uint32_t uidnext, bool keep);
/* Queues a written body for the next batch commit (migrate-batch.c;
 * the queue takes the body: *body is NULL after). The batch finishes its
 * bodies (store_body_finish: the analysis and search text, most of an
 * import's CPU) several at once before it commits them; a body
 * that cannot be finished is reported with in's folder and label and
 * counted as failed. 0, or -2 once a
 * commit met the quota: the import must stop (the message reported is
 * where the next run resumes). Each message is counted, or reported
 * and counted as failed, when its batch commits. */
int migrate_msg_commit(struct migrate *m, struct store_body **body,
		       const struct migrate_msg *in, bool keep_uids);
/* Commits what is queued: 0, or -2 as above. Before a folder's UIDNEXT
 * or marks of its own, and before its summary (migrate_folder_end does
 * it too). */
int migrate_msg_flush(struct migrate *m);
void migrate_batch_free(struct migrate *m);
/* IMAP and POP3 sources (migrate-remote.c): 0, or 2 when the source
 * cannot be reached or logged into. */
int migrate_import_remote(struct migrate *m, const char *url);

/* qsort/bsearch comparison of char * elements. */
int migrate_strp_cmp(const void *a, const void *b);

/* Dovecot's default POP3 UIDL of a message (migrate-import.c). */
const char *migrate_dovecot_uidl(char out[20], uint32_t uid,
				 uint32_t uidvalidity);

void migrate_start(struct migrate *m);
/* A summary line (or JSON object) for the whole run. */
void migrate_finish(struct migrate *m, const char *what);
void migrate_folder_begin(struct migrate *m, const char *name);
/* The folder's summary line. */
void migrate_folder_end(struct migrate *m);
/* One message done (imported: counted as such) and the progress line. */
void migrate_count(struct migrate *m, uint64_t bytes, bool imported);
/* Reports a problem: "FOLDER: ITEM: reason" on err, or a JSON object
 * {"type":"error",...} on out; counted in m->problems. folder and item
 * may be NULL. */
void migrate_error(struct migrate *m, const char *folder, const char *item,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
