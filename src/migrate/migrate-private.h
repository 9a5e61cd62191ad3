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
	bool uids_kept;
	uint64_t changedsince;   /* IMAP: flags asked for changes since this
				    MODSEQ only (0: all of them) */
};

/* The special use a folder's name says (Sent, Sent Messages, Trash,
 * Deleted Items, Junk, Spam, Drafts, Archive ...; 0: none). */
unsigned migrate_role_of(const char *name);

/* One message as a source gives it (migrate-import.c). */
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
	uint64_t size;
};
/* Makes a folder ready (role 0: by its name); *keep_r: the source's UIDs
 * can be kept. -1 after reporting. */
int migrate_folder_prepare(struct migrate *m, const char *name,
			   uint32_t uidvalidity, uint32_t uidnext,
			   unsigned role, bool subscribe, bool *keep_r);
/* After a folder's messages: UIDNEXT as at the source. */
void migrate_folder_done(struct migrate *m, const char *name,
			 uint32_t uidvalidity, uint32_t uidnext, bool keep);
/* Adds a finished body: 0 imported or already there, -1 failed
 * (reported), -2 failed and the import must stop (quota). */
int migrate_msg_commit(struct migrate *m, struct store_body *body,
		       const struct migrate_msg *in, bool keep_uids);
/* IMAP and POP3 sources (migrate-remote.c): 0, or 2 when the source
 * cannot be reached or logged into. */
int migrate_import_remote(struct migrate *m, const char *url);

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
