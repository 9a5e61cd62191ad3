"""Exact search on the postgres backend (issue 18: pg_trgm GIN candidates,
verified) beside the embedded backend, one run, medians.

    python3 bench/pgsearch.py [--messages N] [--reps R]

One account gets N messages by LMTP (about 2 KB of words each, drawn with
a Zipf-like skew from a fixed vocabulary, so some words are in most
messages and some in few), then UID SEARCH BODY for a common word, a word
in about 1 % of the messages, one in a single message, one in none, and
a two-letter needle (no trigram: every candidate of the account is
verified). Figures: the median milliseconds of R searches each, on
sqlite and on postgres (file blobs), and on postgres the size of the two
trigram indexes per message and the plan of the body search.
"""

import argparse
import imaplib
import os
import random
import shutil
import smtplib
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.append(os.path.join(os.path.dirname(HERE), "tests", "lib"))

from pgenv import Postgres  # noqa: E402
from targets import LoftTarget, settle  # noqa: E402

USER = "search@example.test"
PASSWORD = "find-it-fast-please"


def vocabulary(rng, n=3000):
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters)
                          for _ in range(rng.randint(4, 9))))
    return sorted(words)


def message(rng, words, i, n):
    body = []
    size = 0
    while size < 2000:
        # Zipf-like: low ranks far more often
        w = words[min(int(rng.paretovariate(1.1)) - 1, len(words) - 1)]
        body.append(w)
        size += len(w) + 1
    if i % 100 == 7:
        body.append("onepercentmark")
    if i == n // 2:
        body.append("theonlyneedle")
    text = " ".join(body)
    lines = [text[k:k + 70] for k in range(0, len(text), 70)]
    return ("From: a@example.test\r\nTo: %s\r\nSubject: message %d\r\n"
            "Message-ID: <%d@bench>\r\n\r\n%s\r\n"
            % (USER, i, i, "\r\n".join(lines)))


def fill(target, msgs):
    lmtp = smtplib.LMTP(target.host, target.port("lmtp"))
    lmtp.ehlo()
    for m in msgs:
        lmtp.sendmail("a@example.test", [USER], m.encode())
    lmtp.quit()


def searches(target, needles, reps):
    c = imaplib.IMAP4(target.host, target.port("imap"))
    c.login(USER, PASSWORD)
    c.select("INBOX", readonly=True)
    out = {}
    for label, needle in needles:
        times, hits = [], 0
        for _ in range(reps):
            t0 = time.perf_counter()
            typ, data = c.uid("SEARCH", "BODY", '"%s"' % needle)
            times.append((time.perf_counter() - t0) * 1000)
            if typ != "OK":
                raise RuntimeError("SEARCH %s: %s" % (needle, data))
            hits = len(data[0].split())
        out[label] = (statistics.median(times), hits)
    c.logout()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", choices=("sqlite", "postgres"))
    ap.add_argument("--no-trgm", action="store_true",
                    help="drop the trigram indexes first (their cost and"
                    " what they save)")
    args = ap.parse_args()
    rng = random.Random(18)
    words = vocabulary(rng)
    msgs = [message(rng, words, i, args.messages)
            for i in range(args.messages)]
    needles = [("common", words[0]), ("1 %", "onepercentmark"),
               ("one message", "theonlyneedle"), ("none", "nowhereword"),
               ("2 letters", words[0][:2])]
    users = {USER: PASSWORD}
    results = {}
    pg = Postgres()
    spool = tempfile.mkdtemp(prefix="loft-bench-blobs-")
    try:
        for kind in ("sqlite", "postgres"):
            if args.only not in (None, kind):
                continue
            more = None
            if kind == "postgres":
                pg.psql("CREATE DATABASE bsearch", db="postgres")
                more = {"store": {"backend": "postgres",
                                  "postgres": pg.conninfo_for("bsearch"),
                                  "blob_dir": spool}}
            t = LoftTarget(users, more=more)
            if kind == "postgres" and args.no_trgm:
                pg.psql("DROP INDEX blob_body_trgm; DROP INDEX"
                        " blob_header_trgm", db="bsearch")
            try:
                t0 = time.monotonic()
                fill(t, msgs)
                fill_s = time.monotonic() - t0
                settle(t.env.proc.pid)
                results[kind] = searches(t, needles, args.reps)
                print("%s: filled %d in %.1f s" % (kind, len(msgs), fill_s),
                      flush=True)
            finally:
                t.close()
            if kind == "postgres" and not args.no_trgm:
                sizes = pg.psql(
                    "SELECT (SELECT sum(pg_relation_size(relid)) FROM"
                    " pg_partition_tree('blob_body_trgm')),"
                    " (SELECT sum(pg_relation_size(relid)) FROM"
                    " pg_partition_tree('blob_header_trgm'))",
                    db="bsearch").strip().split("|")
                print("trigram indexes per message: body %.0f B, header"
                      " %.0f B" % (int(sizes[0]) / len(msgs),
                                   int(sizes[1]) / len(msgs)))
                plan = pg.psql(
                    "EXPLAIN (COSTS OFF) SELECT m.uid FROM msg m JOIN blob b"
                    " ON b.user_id = m.user_id AND b.id = m.blob WHERE"
                    " m.user_id = (SELECT user_id FROM account LIMIT 1) AND"
                    " m.mailbox = 1 AND loft_text(b.body_text) LIKE"
                    " '%theonlyneedle%' AND position('theonlyneedle'::bytea"
                    " in b.body_text) > 0", db="bsearch")
                print("plan of a body search:\n" + plan)
            if kind == "postgres":
                # the plan of the 7th run (custom, as pg_search_text has it)
                prep = ("PREPARE q(bigint, integer, bytea, text) AS"
                        " SELECT m.uid FROM msg m JOIN blob b ON b.user_id"
                        " = m.user_id AND b.id = m.blob WHERE m.user_id ="
                        " $1 AND m.mailbox = $2 AND (loft_text(b.body_text)"
                        " LIKE $4 AND position($3 in b.body_text) > 0);")
                uid = pg.psql("SELECT user_id FROM account LIMIT 1",
                              db="bsearch").strip()
                ex = ("EXECUTE q(%s, 1, 'theonlyneedle', '%%theonlyneedle%%');"
                      % uid)
                out = pg.psql("SET plan_cache_mode = force_custom_plan;"
                              + prep + ex * 6 + "EXPLAIN (ANALYZE, COSTS OFF,"
                              " TIMING OFF, SUMMARY ON) " + ex.rstrip(";"),
                              db="bsearch")
                print("7th run of the prepared body search:\n" + "\n".join(
                    line for line in out.splitlines()
                    if "Scan" in line or "Execution" in line
                    or "Planning" in line or "Join" in line))
    finally:
        pg.close()
        shutil.rmtree(spool, ignore_errors=True)
    print("\nUID SEARCH BODY, %d messages of ~2 KB, median of %d (ms;"
          " hits)" % (args.messages, args.reps))
    kinds = sorted(results)
    print("| needle | %s |\n|---|%s" % (" | ".join(kinds),
                                        "---|" * len(kinds)))
    for label, _ in needles:
        print("| %s | %s |" % (label, " | ".join(
            "%.1f (%d)" % results[k][label] for k in kinds)))


if __name__ == "__main__":
    main()
