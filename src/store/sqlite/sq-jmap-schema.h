/*
 * The JMAP tables of the embedded backend and the triggers that keep
 * them (store.h "JMAP"). Triggers on msg, blob, mailbox and subscription
 * do the bookkeeping in the same transaction as the change, whatever code
 * made it (IMAP, POP3, LMTP, SMTP, loftctl, JMAP), so no write path can
 * forget it:
 *
 *   jemail     one row per Email (blob): when it appeared, its last
 *              change, visible copies (no \Deleted), merged flags and
 *              keywords (store.h: $seen if every visible copy has it,
 *              the rest if any has), earliest internal date, attachment
 *   jthread    one row per thread: created, last membership change
 *   jmailbox   per mailbox: JMAP counts, last change of any property and
 *              of a non-count one (meta), sortOrder
 *   jmbthread  per (mailbox, thread): visible and unread copies, for
 *              totalThreads / unreadThreads
 *   jmember    Emails entering or leaving a mailbox (queryChanges of the
 *              inMailbox view), pruned with the tombstones
 *   jgone      tombstones of destroyed objects (kind = enum
 *              store_jmap_kind), for /changes; oid is a mailbox's
 *              MAILBOXID, an Email's thread
 *   jobject    stored JMAP objects (Identity, EmailSubmission, ...)
 *   jupload    uploads (files under uploads/)
 *   jmeta      'horizon': changes up to this modseq can no longer be
 *              calculated (pruned, or from before the upgrade)
 *
 * Modseqs: an insert or update carries the job's modseq (msg.modseq); a
 * delete and a blob insert cannot see it, so they take the first modseq
 * of the running batch, (SELECT modseq FROM account) + 1: readers only
 * ever see whole batches, so that is as exact as JMAP can observe. A
 * batch that takes no modseq (account creation) may leave a value one
 * above the account's counter; states are capped at the counter.
 *
 * Unread, as RFC 8621 2 counts it: neither \Seen (1) nor \Draft (16),
 * and visible (\Deleted is 8): (flags & 25) = 0.
 */
#ifndef LOFT_SQ_JMAP_SCHEMA_H
#define LOFT_SQ_JMAP_SCHEMA_H

/* The schema version that brought these (sq-db.c migrations). */
#define SQ_JMAP_SCHEMA_VERSION 4

#define JM_NEXT "((SELECT modseq FROM account) + 1)"
#define JM_THREAD(b) "(SELECT thread FROM blob WHERE id = " b ")"

/* An Email seen as destroyed (no visible copy) that gets one back (its
 * \Deleted removed, an undelete) is created again at m, so /changes
 * reports it created to a client that saw it destroyed. Before
 * JM_EMAIL_MERGE, which recounts visible. */
#define JM_EMAIL_REVIVE(b, m)                                                \
	"UPDATE jemail SET created = " m " WHERE id = " b " AND visible = 0" \
	" AND EXISTS (SELECT 1 FROM msg WHERE blob = " b                     \
	" AND (flags & 8) = 0);"

/* Recomputes an Email's merged values from its copies. */
#define JM_EMAIL_MERGE(b, m)                                                 \
	"UPDATE jemail SET modseq = max(modseq, " m "),"                     \
	" visible = (SELECT count(*) FROM msg WHERE blob = " b               \
	"  AND (flags & 8) = 0),"                                            \
	" flags = coalesce((SELECT min(flags & 1) | max(flags & 2) |"        \
	"  max(flags & 4) | max(flags & 16) FROM msg WHERE blob = " b        \
	"  AND (flags & 8) = 0), 0),"                                        \
	" keywords = (SELECT group_concat(k, ' ') FROM (SELECT DISTINCT"     \
	"  keywords AS k FROM msg WHERE blob = " b " AND (flags & 8) = 0"    \
	"  AND keywords IS NOT NULL)),"                                      \
	" received = coalesce((SELECT min(internaldate) FROM msg"            \
	"  WHERE blob = " b "), received)"                                   \
	" WHERE id = " b ";"

/* A visible copy (mailbox mb, blob b, unread u) joins / leaves the
 * counts of its mailbox at modseq m. */
#define JM_COUNT_ADD(mb, b, u, m)                                            \
	"INSERT INTO jmbthread(mailbox, thread, emails, unread) VALUES"      \
	" (" mb ", " JM_THREAD(b) ", 1, " u ") ON CONFLICT(mailbox, thread)" \
	" DO UPDATE SET emails = emails + 1, unread = unread +"              \
	" excluded.unread;"                                                  \
	"UPDATE jmailbox SET modseq = max(modseq, " m "),"                   \
	" emails = emails + 1, unread = unread + " u ","                     \
	" threads = threads + ((SELECT emails FROM jmbthread WHERE"          \
	"  mailbox = " mb " AND thread = " JM_THREAD(b) ") = 1),"            \
	" unread_threads = unread_threads + (" u " AND (SELECT unread FROM"  \
	"  jmbthread WHERE mailbox = " mb " AND thread = " JM_THREAD(b)      \
	"  ) = 1) WHERE id = " mb ";"                                        \
	"INSERT OR IGNORE INTO jmember VALUES (" mb ", " m ", " b ","        \
	" unixepoch());"

#define JM_COUNT_DEL(mb, b, u, m)                                            \
	"UPDATE jmbthread SET emails = emails - 1, unread = unread - " u     \
	" WHERE mailbox = " mb " AND thread = " JM_THREAD(b) ";"             \
	"UPDATE jmailbox SET modseq = max(modseq, " m "),"                   \
	" emails = emails - 1, unread = unread - " u ","                     \
	" threads = threads - (coalesce((SELECT emails FROM jmbthread"       \
	"  WHERE mailbox = " mb " AND thread = " JM_THREAD(b) "), 0) <= 0)," \
	" unread_threads = unread_threads - (" u " AND coalesce((SELECT"     \
	"  unread FROM jmbthread WHERE mailbox = " mb " AND thread = "       \
	JM_THREAD(b) "), 0) <= 0) WHERE id = " mb ";"                        \
	"DELETE FROM jmbthread WHERE mailbox = " mb " AND thread = "         \
	JM_THREAD(b) " AND emails <= 0;"                                     \
	"INSERT OR IGNORE INTO jmember VALUES (" mb ", " m ", " b ","        \
	" unixepoch());"

/* The thread of blob b changed membership (b became visible or not). */
#define JM_THREAD_BUMP(b, m, cond)                                           \
	"UPDATE jthread SET modseq = max(modseq, " m ") WHERE id = "         \
	JM_THREAD(b) " AND " cond ";"

#define SQ_JMAP_TABLES                                                       \
	"CREATE TABLE IF NOT EXISTS jmeta(k TEXT PRIMARY KEY,"               \
	" v INTEGER NOT NULL) WITHOUT ROWID;"                                \
	"CREATE TABLE IF NOT EXISTS jemail(id INTEGER PRIMARY KEY,"          \
	" created INTEGER NOT NULL, modseq INTEGER NOT NULL,"                \
	" visible INTEGER NOT NULL DEFAULT 0,"                               \
	" flags INTEGER NOT NULL DEFAULT 0, keywords TEXT,"                  \
	" received INTEGER NOT NULL DEFAULT 0,"                              \
	" attach INTEGER NOT NULL DEFAULT 0);"                               \
	"CREATE INDEX IF NOT EXISTS jemail_modseq ON jemail(modseq);"        \
	"CREATE INDEX IF NOT EXISTS jemail_received ON jemail(received)"     \
	" WHERE visible > 0;"                                                \
	"CREATE TABLE IF NOT EXISTS jthread(id INTEGER PRIMARY KEY,"         \
	" created INTEGER NOT NULL, modseq INTEGER NOT NULL);"               \
	"CREATE INDEX IF NOT EXISTS jthread_modseq ON jthread(modseq);"      \
	"CREATE INDEX IF NOT EXISTS blob_thread ON blob(thread);"            \
	"CREATE INDEX IF NOT EXISTS msg_date ON msg(mailbox, internaldate);" \
	"CREATE TABLE IF NOT EXISTS jmailbox(id INTEGER PRIMARY KEY,"        \
	" created INTEGER NOT NULL, modseq INTEGER NOT NULL,"                \
	" meta INTEGER NOT NULL, emails INTEGER NOT NULL DEFAULT 0,"         \
	" unread INTEGER NOT NULL DEFAULT 0,"                                \
	" threads INTEGER NOT NULL DEFAULT 0,"                               \
	" unread_threads INTEGER NOT NULL DEFAULT 0,"                        \
	" sort_order INTEGER NOT NULL DEFAULT 0);"                           \
	"CREATE TABLE IF NOT EXISTS jmbthread(mailbox INTEGER NOT NULL,"     \
	" thread INTEGER NOT NULL, emails INTEGER NOT NULL,"                 \
	" unread INTEGER NOT NULL, PRIMARY KEY (mailbox, thread))"           \
	" WITHOUT ROWID;"                                                    \
	"CREATE TABLE IF NOT EXISTS jmember(mailbox INTEGER NOT NULL,"       \
	" modseq INTEGER NOT NULL, blob INTEGER NOT NULL,"                   \
	" at INTEGER NOT NULL, PRIMARY KEY (mailbox, modseq, blob))"         \
	" WITHOUT ROWID;"                                                    \
	"CREATE TABLE IF NOT EXISTS jgone(kind INTEGER NOT NULL,"            \
	" id INTEGER NOT NULL, oid TEXT, created INTEGER NOT NULL,"          \
	" modseq INTEGER NOT NULL, at INTEGER NOT NULL,"                     \
	" PRIMARY KEY (kind, id)) WITHOUT ROWID;"                            \
	"CREATE INDEX IF NOT EXISTS jgone_modseq ON jgone(kind, modseq);"    \
	"CREATE INDEX IF NOT EXISTS jgone_at ON jgone(at);"                  \
	"CREATE TABLE IF NOT EXISTS jobject(kind INTEGER NOT NULL,"          \
	" id INTEGER NOT NULL, created INTEGER NOT NULL,"                    \
	" modseq INTEGER NOT NULL, data TEXT NOT NULL,"                      \
	" PRIMARY KEY (kind, id)) WITHOUT ROWID;"                            \
	"CREATE INDEX IF NOT EXISTS jobject_modseq ON jobject(kind, modseq);" \
	"CREATE TABLE IF NOT EXISTS jupload(id INTEGER PRIMARY KEY"          \
	" AUTOINCREMENT, name TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,"  \
	" type TEXT, created INTEGER NOT NULL, expires INTEGER NOT NULL);"

#define SQ_JMAP_TRIGGERS                                                     \
	/* Emails */                                                         \
	"CREATE TRIGGER IF NOT EXISTS jblob_ins AFTER INSERT ON blob BEGIN"  \
	" INSERT OR REPLACE INTO jemail(id, created, modseq, attach) VALUES" \
	"  (NEW.id, " JM_NEXT ", " JM_NEXT ","                               \
	"  loft_has_attachment(NEW.bodystructure));"                         \
	" END;"                                                              \
	"CREATE TRIGGER IF NOT EXISTS jblob_thread AFTER UPDATE OF thread"   \
	" ON blob WHEN NEW.thread != OLD.thread BEGIN"                       \
	" INSERT OR IGNORE INTO jthread VALUES (NEW.thread, " JM_NEXT ","    \
	"  " JM_NEXT ");"                                                    \
	" DELETE FROM jgone WHERE kind = 2 AND id = NEW.thread;"             \
	" END;"                                                              \
	"CREATE TRIGGER IF NOT EXISTS jblob_del AFTER DELETE ON blob BEGIN"  \
	" INSERT OR REPLACE INTO jgone SELECT 1, id, OLD.thread, created, "  \
	JM_NEXT ", unixepoch() FROM jemail WHERE id = OLD.id;"               \
	" DELETE FROM jemail WHERE id = OLD.id;"                             \
	" INSERT OR REPLACE INTO jgone SELECT 2, id, NULL, created, "        \
	JM_NEXT ", unixepoch() FROM jthread WHERE id = OLD.thread AND NOT"   \
	"  EXISTS (SELECT 1 FROM blob WHERE thread = OLD.thread);"           \
	" DELETE FROM jthread WHERE id = OLD.thread AND NOT EXISTS"          \
	"  (SELECT 1 FROM blob WHERE thread = OLD.thread);"                  \
	" END;"                                                              \
	/* copies */                                                         \
	"CREATE TRIGGER IF NOT EXISTS jmsg_ins AFTER INSERT ON msg BEGIN "   \
	JM_THREAD_BUMP("NEW.blob", "NEW.modseq",                             \
		       "(NEW.flags & 8) = 0 AND (SELECT visible FROM jemail" \
		       " WHERE id = NEW.blob) = 0")                          \
	JM_EMAIL_REVIVE("NEW.blob", "NEW.modseq")                            \
	JM_EMAIL_MERGE("NEW.blob", "NEW.modseq")                             \
	" END;"                                                              \
	"CREATE TRIGGER IF NOT EXISTS jmsg_ins_count AFTER INSERT ON msg"    \
	" WHEN (NEW.flags & 8) = 0 BEGIN "                                   \
	JM_COUNT_ADD("NEW.mailbox", "NEW.blob", "((NEW.flags & 25) = 0)",    \
		     "NEW.modseq")                                           \
	" END;"                                                              \
	"CREATE TRIGGER IF NOT EXISTS jmsg_del AFTER DELETE ON msg BEGIN "   \
	JM_EMAIL_MERGE("OLD.blob", JM_NEXT)                                  \
	JM_THREAD_BUMP("OLD.blob", JM_NEXT,                                  \
		       "(OLD.flags & 8) = 0 AND (SELECT visible FROM jemail" \
		       " WHERE id = OLD.blob) = 0")                          \
	" END;"                                                              \
	"CREATE TRIGGER IF NOT EXISTS jmsg_del_count AFTER DELETE ON msg"    \
	" WHEN (OLD.flags & 8) = 0 BEGIN "                                   \
	JM_COUNT_DEL("OLD.mailbox", "OLD.blob", "((OLD.flags & 25) = 0)",    \
		     JM_NEXT)                                                \
	" END;"                                                              \
	"CREATE TRIGGER IF NOT EXISTS jmsg_upd AFTER UPDATE OF flags,"       \
	" keywords, modseq ON msg WHEN NEW.modseq != OLD.modseq BEGIN "      \
	JM_THREAD_BUMP("NEW.blob", "NEW.modseq",                             \
		       "(OLD.flags & 8) != 0 AND (NEW.flags & 8) = 0 AND"    \
		       " (SELECT visible FROM jemail WHERE id = NEW.blob) = 0") \
	JM_EMAIL_REVIVE("NEW.blob", "NEW.modseq")                            \
	JM_EMAIL_MERGE("NEW.blob", "NEW.modseq")                             \
	JM_THREAD_BUMP("NEW.blob", "NEW.modseq",                             \
		       "(OLD.flags & 8) = 0 AND (NEW.flags & 8) != 0 AND"    \
		       " (SELECT visible FROM jemail WHERE id = NEW.blob) = 0") \
	" END;"                                                              \
	"CREATE TRIGGER IF NOT EXISTS jmsg_upd_hide AFTER UPDATE OF flags"   \
	" ON msg WHEN (OLD.flags & 8) = 0 AND (NEW.flags & 8) != 0 BEGIN "   \
	JM_COUNT_DEL("OLD.mailbox", "OLD.blob", "((OLD.flags & 25) = 0)",    \
		     "NEW.modseq")                                           \
	" END;"                                                              \
	"CREATE TRIGGER IF NOT EXISTS jmsg_upd_show AFTER UPDATE OF flags"   \
	" ON msg WHEN (OLD.flags & 8) != 0 AND (NEW.flags & 8) = 0 BEGIN "   \
	JM_COUNT_ADD("NEW.mailbox", "NEW.blob", "((NEW.flags & 25) = 0)",    \
		     "NEW.modseq")                                           \
	" END;"                                                              \
	"CREATE TRIGGER IF NOT EXISTS jmsg_upd_unread AFTER UPDATE OF flags" \
	" ON msg WHEN (OLD.flags & 8) = 0 AND (NEW.flags & 8) = 0 AND"       \
	" ((OLD.flags & 25) = 0) != ((NEW.flags & 25) = 0) BEGIN"            \
	" UPDATE jmbthread SET unread = unread + ((NEW.flags & 25) = 0) -"   \
	"  ((OLD.flags & 25) = 0) WHERE mailbox = NEW.mailbox AND thread = " \
	JM_THREAD("NEW.blob") ";"                                            \
	" UPDATE jmailbox SET modseq = max(modseq, NEW.modseq),"             \
	"  unread = unread + ((NEW.flags & 25) = 0) - ((OLD.flags & 25) = 0)," \
	"  unread_threads = unread_threads + CASE WHEN (NEW.flags & 25) = 0" \
	"  THEN ((SELECT unread FROM jmbthread WHERE mailbox = NEW.mailbox"  \
	"  AND thread = " JM_THREAD("NEW.blob") ") = 1) ELSE -((SELECT"      \
	"  unread FROM jmbthread WHERE mailbox = NEW.mailbox AND thread = "  \
	JM_THREAD("NEW.blob") ") = 0) END WHERE id = NEW.mailbox;"           \
	" END;"                                                              \
	/* mailboxes */                                                      \
	"CREATE TRIGGER IF NOT EXISTS jmbox_ins AFTER INSERT ON mailbox"     \
	" BEGIN INSERT OR IGNORE INTO jmailbox(id, created, modseq, meta)"   \
	" VALUES (NEW.id, NEW.highestmodseq, NEW.highestmodseq,"             \
	" NEW.highestmodseq); END;"                                          \
	"CREATE TRIGGER IF NOT EXISTS jmbox_upd AFTER UPDATE OF name,"       \
	" special_use, noselect ON mailbox WHEN NEW.name IS NOT OLD.name OR" \
	" NEW.special_use != OLD.special_use OR NEW.noselect != OLD.noselect" \
	" BEGIN UPDATE jmailbox SET modseq = max(modseq, " JM_NEXT "),"      \
	" meta = max(meta, " JM_NEXT ") WHERE id = NEW.id; END;"             \
	"CREATE TRIGGER IF NOT EXISTS jmbox_del AFTER DELETE ON mailbox"     \
	" BEGIN INSERT OR REPLACE INTO jgone SELECT 0, OLD.id, OLD.objectid," \
	" created, " JM_NEXT ", unixepoch() FROM jmailbox WHERE id = OLD.id;" \
	" DELETE FROM jmailbox WHERE id = OLD.id;"                           \
	" DELETE FROM jmbthread WHERE mailbox = OLD.id; END;"                \
	"CREATE TRIGGER IF NOT EXISTS jsub_ins AFTER INSERT ON subscription" \
	" BEGIN UPDATE jmailbox SET modseq = max(modseq, " JM_NEXT "),"      \
	" meta = max(meta, " JM_NEXT ") WHERE id = (SELECT id FROM mailbox"  \
	" WHERE name = NEW.name); END;"                                      \
	"CREATE TRIGGER IF NOT EXISTS jsub_del AFTER DELETE ON subscription" \
	" BEGIN UPDATE jmailbox SET modseq = max(modseq, " JM_NEXT "),"      \
	" meta = max(meta, " JM_NEXT ") WHERE id = (SELECT id FROM mailbox"  \
	" WHERE name = OLD.name); END;"

/* An index from before JMAP: everything computed once; no change before
 * the upgrade can be calculated (the horizon). */
#define SQ_JMAP_BACKFILL                                                     \
	"INSERT OR IGNORE INTO jemail(id, created, modseq, attach)"          \
	" SELECT b.id, a.modseq, a.modseq,"                                  \
	" loft_has_attachment(b.bodystructure) FROM blob b, account a;"      \
	JM_EMAIL_MERGE("jemail.id", "jemail.modseq")                         \
	"INSERT OR IGNORE INTO jthread(id, created, modseq) SELECT DISTINCT" \
	" b.thread, a.modseq, a.modseq FROM blob b, account a"               \
	" WHERE b.thread != 0;"                                              \
	"INSERT OR IGNORE INTO jmailbox(id, created, modseq, meta)"          \
	" SELECT x.id, a.modseq, a.modseq, a.modseq FROM mailbox x,"         \
	" account a;"                                                        \
	"INSERT OR IGNORE INTO jmbthread SELECT m.mailbox, b.thread,"        \
	" count(*), sum((m.flags & 25) = 0) FROM msg m JOIN blob b"          \
	" ON b.id = m.blob WHERE (m.flags & 8) = 0 GROUP BY m.mailbox,"      \
	" b.thread;"                                                         \
	"UPDATE jmailbox SET"                                                \
	" emails = coalesce((SELECT sum(emails) FROM jmbthread t"            \
	"  WHERE t.mailbox = jmailbox.id), 0),"                              \
	" unread = coalesce((SELECT sum(unread) FROM jmbthread t"            \
	"  WHERE t.mailbox = jmailbox.id), 0),"                              \
	" threads = (SELECT count(*) FROM jmbthread t"                       \
	"  WHERE t.mailbox = jmailbox.id),"                                  \
	" unread_threads = (SELECT count(*) FROM jmbthread t"                \
	"  WHERE t.mailbox = jmailbox.id AND t.unread > 0);"                 \
	"INSERT OR REPLACE INTO jmeta SELECT 'horizon', modseq FROM account;"

#endif
