/*
 * JMAP mail in the PostgreSQL backend: the tables and the plpgsql
 * triggers that keep them (schema step 7 -> 8). They are the embedded
 * backend's (sqlite/sq-jmap-schema.h, whose comment says what each table
 * holds), with the account's user_id in every key: triggers on blob,
 * msg, mailbox and subscription do the bookkeeping in the transaction of
 * the change, whatever code made it (IMAP, POP3, LMTP, JMAP, loftctl), so
 * no write path can forget it.
 *
 * Modseqs: an insert or update carries the row's modseq; a delete and a
 * blob insert take loft_jnext(user), the account's counter + 1. The
 * counter is written back only at the end of the writing transaction
 * (pg_wend) under the account's row lock, so within the transaction that
 * is the modseq it takes: readers see whole transactions.
 *
 * jupload: an upload's bytes are a body in the blob store under their
 * SHA-256, counted in blob_object by the same trigger as blob rows
 * (loft_blob_ref, step 2), so the collector keeps them while named.
 *
 * jemail.attach is set by the delivery (C reads the BODYSTRUCTURE:
 * store_bodystructure_has_attachment); NULL for rows made by the upgrade,
 * computed on reading. Unread (RFC 8621 2): neither \Seen (1) nor \Draft
 * (16), and visible (\Deleted is 8): (flags & 25) = 0.
 */
#ifndef LOFT_PG_JMAIL_SCHEMA_H
#define LOFT_PG_JMAIL_SCHEMA_H

#define PG_JMAIL_TABLES                                                     \
	"CREATE TABLE jemail (user_id bigint NOT NULL"                      \
	" REFERENCES account ON DELETE CASCADE, id bigint NOT NULL,"        \
	" created bigint NOT NULL, modseq bigint NOT NULL,"                 \
	" visible integer NOT NULL DEFAULT 0,"                              \
	" flags integer NOT NULL DEFAULT 0, keywords text,"                 \
	" received bigint NOT NULL DEFAULT 0, attach boolean,"              \
	" PRIMARY KEY (user_id, id)) PARTITION BY HASH (user_id);"          \
	"CREATE INDEX jemail_modseq ON jemail (user_id, modseq);"           \
	"CREATE INDEX jemail_received ON jemail (user_id, received)"        \
	" WHERE visible > 0;"                                               \
	"CREATE TABLE jthread (user_id bigint NOT NULL"                     \
	" REFERENCES account ON DELETE CASCADE, id bigint NOT NULL,"        \
	" created bigint NOT NULL, modseq bigint NOT NULL,"                 \
	" PRIMARY KEY (user_id, id)) PARTITION BY HASH (user_id);"          \
	"CREATE INDEX jthread_modseq ON jthread (user_id, modseq);"         \
	"CREATE INDEX blob_thread ON blob (user_id, thread);"               \
	"CREATE INDEX msg_date ON msg (user_id, mailbox, internaldate);"    \
	"CREATE TABLE jmailbox (user_id bigint NOT NULL"                    \
	" REFERENCES account ON DELETE CASCADE, id integer NOT NULL,"       \
	" created bigint NOT NULL, modseq bigint NOT NULL,"                 \
	" meta bigint NOT NULL, emails bigint NOT NULL DEFAULT 0,"          \
	" unread bigint NOT NULL DEFAULT 0,"                                \
	" threads bigint NOT NULL DEFAULT 0,"                               \
	" unread_threads bigint NOT NULL DEFAULT 0,"                        \
	" sort_order bigint NOT NULL DEFAULT 0, PRIMARY KEY (user_id, id));" \
	"CREATE INDEX jmailbox_modseq ON jmailbox (user_id, modseq);"       \
	"CREATE TABLE jmbthread (user_id bigint NOT NULL"                   \
	" REFERENCES account ON DELETE CASCADE, mailbox integer NOT NULL,"  \
	" thread bigint NOT NULL, emails bigint NOT NULL,"                  \
	" unread bigint NOT NULL, PRIMARY KEY (user_id, mailbox, thread));" \
	"CREATE TABLE jmember (user_id bigint NOT NULL"                     \
	" REFERENCES account ON DELETE CASCADE, mailbox integer NOT NULL,"  \
	" modseq bigint NOT NULL, blob bigint NOT NULL, at bigint NOT NULL," \
	" PRIMARY KEY (user_id, mailbox, modseq, blob))"                    \
	" PARTITION BY HASH (user_id);"                                     \
	"CREATE INDEX jmember_at ON jmember (at);"                          \
	/* uploads: bytes in the blob store, counted for the collector */   \
	"CREATE SEQUENCE jupload_id;"                                       \
	"CREATE TABLE jupload (user_id bigint NOT NULL"                     \
	" REFERENCES account ON DELETE CASCADE,"                            \
	" id bigint NOT NULL DEFAULT nextval('jupload_id'),"                \
	" sha256 text NOT NULL, body_size bigint NOT NULL, type text,"      \
	" created bigint NOT NULL, expires bigint NOT NULL,"                \
	" PRIMARY KEY (user_id, id));"                                      \
	"CREATE INDEX jupload_expires ON jupload (user_id, expires);"       \
	"DO $$ BEGIN FOR i IN 0..15 LOOP"                                   \
	" EXECUTE format('CREATE TABLE %I PARTITION OF jemail"              \
	"  FOR VALUES WITH (MODULUS 16, REMAINDER %s)', 'jemail_p' || i, i);" \
	" EXECUTE format('CREATE TABLE %I PARTITION OF jthread"             \
	"  FOR VALUES WITH (MODULUS 16, REMAINDER %s)', 'jthread_p' || i, i);" \
	" EXECUTE format('CREATE TABLE %I PARTITION OF jmember"             \
	"  FOR VALUES WITH (MODULUS 16, REMAINDER %s)', 'jmember_p' || i, i);" \
	" END LOOP; END $$;"

/* A database from before this step: everything computed once; no change
 * before the upgrade can be calculated (the horizon). */
#define PG_JMAIL_BACKFILL                                                   \
	"INSERT INTO jemail (user_id, id, created, modseq, attach)"         \
	" SELECT b.user_id, b.id, a.modseq, a.modseq, NULL FROM blob b"     \
	" JOIN account a ON a.user_id = b.user_id;"                         \
	"UPDATE jemail j SET visible = s.v, flags = coalesce(s.f, 0),"      \
	" keywords = s.k, received = coalesce(s.r, 0) FROM (" PG_JMAIL_MERGED \
	" , user_id, blob FROM msg GROUP BY user_id, blob) s"               \
	" WHERE j.user_id = s.user_id AND j.id = s.blob;"                   \
	"INSERT INTO jthread SELECT DISTINCT b.user_id, b.thread, a.modseq," \
	" a.modseq FROM blob b JOIN account a ON a.user_id = b.user_id"     \
	" WHERE b.thread <> 0;"                                             \
	"INSERT INTO jmailbox (user_id, id, created, modseq, meta)"         \
	" SELECT m.user_id, m.id, a.modseq, a.modseq, a.modseq FROM mailbox m" \
	" JOIN account a ON a.user_id = m.user_id;"                         \
	"INSERT INTO jmbthread SELECT m.user_id, m.mailbox, b.thread,"      \
	" count(*), count(*) FILTER (WHERE (m.flags & 25) = 0) FROM msg m"  \
	" JOIN blob b ON b.user_id = m.user_id AND b.id = m.blob"           \
	" WHERE (m.flags & 8) = 0 GROUP BY m.user_id, m.mailbox, b.thread;" \
	"UPDATE jmailbox j SET emails = s.e, unread = s.u, threads = s.t,"  \
	" unread_threads = s.ut FROM (SELECT user_id, mailbox, sum(emails) e," \
	" sum(unread) u, count(*) t, count(*) FILTER (WHERE unread > 0) ut" \
	" FROM jmbthread GROUP BY user_id, mailbox) s"                      \
	" WHERE j.user_id = s.user_id AND j.id = s.mailbox;"                \
	"UPDATE account SET jmap_horizon = greatest(jmap_horizon, modseq);"

/* An Email's merged values from its copies (a select list; FROM msg
 * follows): visible copies, flags ($seen only if every visible copy has
 * it, the rest if any has), keywords, the earliest internal date. */
#define PG_JMAIL_MERGED                                                     \
	"SELECT count(*) FILTER (WHERE (flags & 8) = 0) AS v,"              \
	" (min(flags & 1) FILTER (WHERE (flags & 8) = 0)) |"                \
	" (max(flags & 2) FILTER (WHERE (flags & 8) = 0)) |"                \
	" (max(flags & 4) FILTER (WHERE (flags & 8) = 0)) |"                \
	" (max(flags & 16) FILTER (WHERE (flags & 8) = 0)) AS f,"           \
	" string_agg(DISTINCT keywords, ' ') FILTER (WHERE (flags & 8) = 0)" \
	" AS k, min(internaldate) AS r"

#define PG_JMAIL_FUNCTIONS                                                  \
	"CREATE FUNCTION loft_jnext(u bigint) RETURNS bigint LANGUAGE sql"  \
	" STABLE AS $f$ SELECT modseq + 1 FROM account WHERE user_id = u $f$;" \
	"CREATE FUNCTION loft_jnow() RETURNS bigint LANGUAGE sql STABLE"    \
	" AS $f$ SELECT extract(epoch FROM now())::bigint $f$;"             \
	/* recomputes an Email's merged values; an Email seen destroyed */  \
	/* that gets a visible copy back is created again at m */           \
	"CREATE FUNCTION loft_jemail_merge(u bigint, b bigint, m bigint)"   \
	" RETURNS void LANGUAGE plpgsql AS $f$ BEGIN"                       \
	" UPDATE jemail SET created = m WHERE user_id = u AND id = b AND"   \
	"  visible = 0 AND EXISTS (SELECT 1 FROM msg WHERE user_id = u AND" \
	"  blob = b AND (flags & 8) = 0);"                                  \
	" UPDATE jemail j SET modseq = greatest(j.modseq, m), visible = s.v," \
	"  flags = coalesce(s.f, 0), keywords = s.k,"                       \
	"  received = coalesce(s.r, j.received) FROM (" PG_JMAIL_MERGED     \
	"  FROM msg WHERE user_id = u AND blob = b) s"                      \
	"  WHERE j.user_id = u AND j.id = b;"                               \
	" END $f$;"                                                         \
	/* a visible copy (mailbox mb, thread th, blob b) joins (d = 1) or */ \
	/* leaves (d = -1) the counts of its mailbox at modseq m */         \
	"CREATE FUNCTION loft_jcount(u bigint, mb integer, th bigint,"      \
	" b bigint, unr boolean, m bigint, d integer) RETURNS void"         \
	" LANGUAGE plpgsql AS $f$ DECLARE e bigint; n bigint;"              \
	" ur integer := CASE WHEN unr THEN 1 ELSE 0 END; BEGIN"             \
	" IF d > 0 THEN"                                                    \
	"  INSERT INTO jmbthread AS t VALUES (u, mb, th, 1, ur)"            \
	"  ON CONFLICT (user_id, mailbox, thread) DO UPDATE SET"            \
	"  emails = t.emails + 1, unread = t.unread + ur"                   \
	"  RETURNING t.emails, t.unread INTO e, n;"                         \
	"  UPDATE jmailbox SET modseq = greatest(modseq, m),"               \
	"  emails = emails + 1, unread = unread + ur,"                      \
	"  threads = threads + CASE WHEN e = 1 THEN 1 ELSE 0 END,"          \
	"  unread_threads = unread_threads + CASE WHEN unr AND n = 1"       \
	"  THEN 1 ELSE 0 END WHERE user_id = u AND id = mb;"                \
	" ELSE"                                                             \
	"  UPDATE jmbthread SET emails = emails - 1, unread = unread - ur"  \
	"  WHERE user_id = u AND mailbox = mb AND thread = th"              \
	"  RETURNING emails, unread INTO e, n;"                             \
	"  UPDATE jmailbox SET modseq = greatest(modseq, m),"               \
	"  emails = emails - 1, unread = unread - ur,"                      \
	"  threads = threads - CASE WHEN coalesce(e, 0) <= 0 THEN 1 ELSE 0" \
	"  END, unread_threads = unread_threads - CASE WHEN unr AND"        \
	"  coalesce(n, 0) <= 0 THEN 1 ELSE 0 END"                           \
	"  WHERE user_id = u AND id = mb;"                                  \
	"  DELETE FROM jmbthread WHERE user_id = u AND mailbox = mb AND"    \
	"  thread = th AND emails <= 0;"                                    \
	" END IF;"                                                          \
	" INSERT INTO jmember VALUES (u, mb, m, b, loft_jnow())"            \
	" ON CONFLICT DO NOTHING;"                                          \
	" END $f$;"                                                         \
	/* Emails and threads */                                            \
	"CREATE FUNCTION loft_jblob() RETURNS trigger LANGUAGE plpgsql AS $f$" \
	" DECLARE nx bigint; BEGIN"                                         \
	" IF TG_OP = 'INSERT' THEN"                                         \
	"  nx := loft_jnext(NEW.user_id);"                                  \
	"  INSERT INTO jemail (user_id, id, created, modseq, attach)"       \
	"  VALUES (NEW.user_id, NEW.id, nx, nx, false)"                     \
	"  ON CONFLICT (user_id, id) DO UPDATE SET created = nx,"           \
	"  modseq = nx, visible = 0, flags = 0, keywords = NULL,"           \
	"  received = 0, attach = false;"                                   \
	" ELSIF TG_OP = 'UPDATE' THEN"                                      \
	"  nx := loft_jnext(NEW.user_id);"                                  \
	"  INSERT INTO jthread VALUES (NEW.user_id, NEW.thread, nx, nx)"    \
	"  ON CONFLICT DO NOTHING;"                                         \
	"  DELETE FROM jgone WHERE user_id = NEW.user_id AND kind = 2 AND"  \
	"  id = NEW.thread;"                                                \
	" ELSE"                                                             \
	"  nx := loft_jnext(OLD.user_id);"                                  \
	"  INSERT INTO jgone (user_id, kind, id, oid, created, modseq, at)" \
	"  SELECT OLD.user_id, 1, id, OLD.thread::text, created, nx,"       \
	"  loft_jnow() FROM jemail WHERE user_id = OLD.user_id AND"         \
	"  id = OLD.id ON CONFLICT (user_id, kind, id) DO UPDATE SET"       \
	"  oid = excluded.oid, created = excluded.created,"                 \
	"  modseq = excluded.modseq, at = excluded.at;"                     \
	"  DELETE FROM jemail WHERE user_id = OLD.user_id AND id = OLD.id;" \
	"  IF NOT EXISTS (SELECT 1 FROM blob WHERE user_id = OLD.user_id"   \
	"  AND thread = OLD.thread) THEN"                                   \
	"   INSERT INTO jgone (user_id, kind, id, oid, created, modseq, at)" \
	"   SELECT OLD.user_id, 2, id, NULL, created, nx, loft_jnow()"      \
	"   FROM jthread WHERE user_id = OLD.user_id AND id = OLD.thread"   \
	"   ON CONFLICT (user_id, kind, id) DO UPDATE SET"                  \
	"   created = excluded.created, modseq = excluded.modseq,"          \
	"   at = excluded.at;"                                              \
	"   DELETE FROM jthread WHERE user_id = OLD.user_id AND"            \
	"   id = OLD.thread;"                                               \
	"  END IF;"                                                         \
	" END IF; RETURN NULL; END $f$;"                                    \
	/* copies */                                                        \
	"CREATE FUNCTION loft_jmsg() RETURNS trigger LANGUAGE plpgsql AS $f$" \
	" DECLARE th bigint; vis integer; m bigint; BEGIN"                  \
	" IF TG_OP = 'DELETE' THEN"                                         \
	"  m := loft_jnext(OLD.user_id);"                                   \
	"  SELECT thread INTO th FROM blob WHERE user_id = OLD.user_id AND" \
	"  id = OLD.blob; th := coalesce(th, 0);"                           \
	"  PERFORM loft_jemail_merge(OLD.user_id, OLD.blob, m);"            \
	"  IF (OLD.flags & 8) = 0 THEN"                                     \
	"   SELECT visible INTO vis FROM jemail WHERE user_id = OLD.user_id" \
	"   AND id = OLD.blob;"                                             \
	"   IF vis = 0 THEN UPDATE jthread SET modseq = greatest(modseq, m)" \
	"   WHERE user_id = OLD.user_id AND id = th; END IF;"               \
	"   PERFORM loft_jcount(OLD.user_id, OLD.mailbox, th, OLD.blob,"    \
	"   (OLD.flags & 25) = 0, m, -1);"                                  \
	"  END IF;"                                                         \
	"  RETURN NULL;"                                                    \
	" END IF;"                                                          \
	" m := NEW.modseq;"                                                 \
	" SELECT thread INTO th FROM blob WHERE user_id = NEW.user_id AND"  \
	" id = NEW.blob; th := coalesce(th, 0);"                            \
	" SELECT visible INTO vis FROM jemail WHERE user_id = NEW.user_id"  \
	" AND id = NEW.blob;"                                               \
	" IF TG_OP = 'INSERT' THEN"                                         \
	"  IF (NEW.flags & 8) = 0 AND vis = 0 THEN UPDATE jthread SET"      \
	"  modseq = greatest(modseq, m) WHERE user_id = NEW.user_id AND"    \
	"  id = th; END IF;"                                                \
	"  PERFORM loft_jemail_merge(NEW.user_id, NEW.blob, m);"            \
	"  IF (NEW.flags & 8) = 0 THEN"                                     \
	"   PERFORM loft_jcount(NEW.user_id, NEW.mailbox, th, NEW.blob,"    \
	"   (NEW.flags & 25) = 0, m, 1);"                                   \
	"  END IF;"                                                         \
	"  RETURN NULL;"                                                    \
	" END IF;"                                                          \
	" IF NEW.modseq <> OLD.modseq THEN"                                 \
	"  IF (OLD.flags & 8) <> 0 AND (NEW.flags & 8) = 0 AND vis = 0 THEN" \
	"   UPDATE jthread SET modseq = greatest(modseq, m) WHERE"          \
	"   user_id = NEW.user_id AND id = th;"                             \
	"  END IF;"                                                         \
	"  PERFORM loft_jemail_merge(NEW.user_id, NEW.blob, m);"            \
	"  SELECT visible INTO vis FROM jemail WHERE user_id = NEW.user_id" \
	"  AND id = NEW.blob;"                                              \
	"  IF (OLD.flags & 8) = 0 AND (NEW.flags & 8) <> 0 AND vis = 0 THEN" \
	"   UPDATE jthread SET modseq = greatest(modseq, m) WHERE"          \
	"   user_id = NEW.user_id AND id = th;"                             \
	"  END IF;"                                                         \
	" END IF;"                                                          \
	" IF (OLD.flags & 8) = 0 AND (NEW.flags & 8) <> 0 THEN"             \
	"  PERFORM loft_jcount(OLD.user_id, OLD.mailbox, th, OLD.blob,"     \
	"  (OLD.flags & 25) = 0, m, -1);"                                   \
	" ELSIF (OLD.flags & 8) <> 0 AND (NEW.flags & 8) = 0 THEN"          \
	"  PERFORM loft_jcount(NEW.user_id, NEW.mailbox, th, NEW.blob,"     \
	"  (NEW.flags & 25) = 0, m, 1);"                                    \
	" ELSIF (OLD.flags & 8) = 0 AND ((OLD.flags & 25) = 0) <>"          \
	" ((NEW.flags & 25) = 0) THEN"                                      \
	"  DECLARE d integer := CASE WHEN (NEW.flags & 25) = 0 THEN 1"      \
	"  ELSE -1 END; n bigint; BEGIN"                                    \
	"  UPDATE jmbthread SET unread = unread + d WHERE"                  \
	"  user_id = NEW.user_id AND mailbox = NEW.mailbox AND thread = th" \
	"  RETURNING unread INTO n;"                                        \
	"  UPDATE jmailbox SET modseq = greatest(modseq, m),"               \
	"  unread = unread + d, unread_threads = unread_threads +"          \
	"  CASE WHEN d > 0 AND n = 1 THEN 1 WHEN d < 0 AND n = 0 THEN -1"   \
	"  ELSE 0 END WHERE user_id = NEW.user_id AND id = NEW.mailbox;"    \
	"  END;"                                                            \
	" END IF;"                                                          \
	" RETURN NULL; END $f$;"                                            \
	/* mailboxes and subscriptions */                                   \
	"CREATE FUNCTION loft_jmbox() RETURNS trigger LANGUAGE plpgsql AS $f$" \
	" DECLARE nx bigint; BEGIN"                                         \
	" IF TG_OP = 'INSERT' THEN"                                         \
	"  INSERT INTO jmailbox (user_id, id, created, modseq, meta) VALUES" \
	"  (NEW.user_id, NEW.id, NEW.highestmodseq, NEW.highestmodseq,"     \
	"  NEW.highestmodseq) ON CONFLICT DO NOTHING;"                      \
	" ELSIF TG_OP = 'UPDATE' THEN"                                      \
	"  IF NEW.name IS DISTINCT FROM OLD.name OR NEW.special_use <>"     \
	"  OLD.special_use OR NEW.noselect <> OLD.noselect THEN"            \
	"   nx := loft_jnext(NEW.user_id);"                                 \
	"   UPDATE jmailbox SET modseq = greatest(modseq, nx),"             \
	"   meta = greatest(meta, nx) WHERE user_id = NEW.user_id AND"      \
	"   id = NEW.id;"                                                   \
	"  END IF;"                                                         \
	" ELSE"                                                             \
	"  nx := loft_jnext(OLD.user_id);"                                  \
	"  INSERT INTO jgone (user_id, kind, id, oid, created, modseq, at)" \
	"  SELECT OLD.user_id, 0, OLD.id, OLD.objectid, created, nx,"       \
	"  loft_jnow() FROM jmailbox WHERE user_id = OLD.user_id AND"       \
	"  id = OLD.id ON CONFLICT (user_id, kind, id) DO UPDATE SET"       \
	"  oid = excluded.oid, created = excluded.created,"                 \
	"  modseq = excluded.modseq, at = excluded.at;"                     \
	"  DELETE FROM jmailbox WHERE user_id = OLD.user_id AND id = OLD.id;" \
	"  DELETE FROM jmbthread WHERE user_id = OLD.user_id AND"           \
	"  mailbox = OLD.id;"                                               \
	" END IF; RETURN NULL; END $f$;"                                    \
	"CREATE FUNCTION loft_jsub() RETURNS trigger LANGUAGE plpgsql AS $f$" \
	" DECLARE r record; nx bigint; BEGIN"                               \
	" IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;"        \
	" nx := loft_jnext(r.user_id);"                                     \
	" UPDATE jmailbox SET modseq = greatest(modseq, nx),"               \
	" meta = greatest(meta, nx) WHERE user_id = r.user_id AND"          \
	" id = (SELECT id FROM mailbox WHERE user_id = r.user_id AND"       \
	" name = r.name);"                                                  \
	" RETURN NULL; END $f$;"

#define PG_JMAIL_TRIGGERS                                                   \
	"CREATE TRIGGER jblob AFTER INSERT OR DELETE ON blob"               \
	" FOR EACH ROW EXECUTE FUNCTION loft_jblob();"                      \
	"CREATE TRIGGER jblob_thread AFTER UPDATE OF thread ON blob"        \
	" FOR EACH ROW WHEN (NEW.thread <> OLD.thread)"                     \
	" EXECUTE FUNCTION loft_jblob();"                                   \
	"CREATE TRIGGER jmsg AFTER INSERT OR DELETE OR UPDATE OF flags,"    \
	" keywords, modseq ON msg FOR EACH ROW EXECUTE FUNCTION loft_jmsg();" \
	"CREATE TRIGGER jmbox AFTER INSERT OR DELETE OR UPDATE OF name,"    \
	" special_use, noselect ON mailbox"                                 \
	" FOR EACH ROW EXECUTE FUNCTION loft_jmbox();"                      \
	"CREATE TRIGGER jsub AFTER INSERT OR DELETE ON subscription"        \
	" FOR EACH ROW EXECUTE FUNCTION loft_jsub();"                       \
	"CREATE TRIGGER jupload_ref AFTER INSERT OR DELETE ON jupload"      \
	" FOR EACH ROW EXECUTE FUNCTION loft_blob_ref();"

#endif
