#!/usr/bin/env python3
"""Deterministic mail corpus for the benchmarks.

Every message is a function of (seed, index): the same seed gives the same
bytes on every machine, so Loft and Dovecot are fed identical data and runs
can be compared. Shapes and sizes follow what real mailboxes hold:

- sizes: median near 8 KB with a long tail (about 10 % over 100 KB and 1 %
  over 1 MB), driven by the body text and attachments;
- structure: text/plain (about 45 %), multipart/alternative with an HTML
  part (35 %), multipart/mixed with attachments (20 %);
- headers: realistic From/To/Cc with display names, some RFC 2047 encoded
  words, Message-ID, and threads (In-Reply-To / References chains with
  "Re:" subjects);
- a marker word (SEARCH_WORD) in the body of about 1 % of messages, for the
  SEARCH BODY / SEARCH TEXT scenarios.

Usage as a script: corpus.py COUNT [--seed N] [--out DIR] writes COUNT
messages as DIR/000000.eml ... (CRLF line endings).
"""

import argparse
import base64
import os
import random
import sys
import time

SEARCH_WORD = "quetzalcoatl"
# the List-Id of about 1 % of messages (index % 100 == 37)
LIST_ID = "announce.bench.example.org"

FIRST = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi",
         "Ivan", "Judy", "Mallory", "Niaj", "Olivia", "Peggy", "Rupert",
         "Sybil", "Trent", "Victor", "Walter", "Zoë", "José", "Łukasz"]
LAST = ["Smith", "Jones", "Müller", "García", "Rossi", "Dubois", "Kowalski",
        "Nakamura", "Olsen", "Novak", "O'Brien", "Silva", "Chen", "Ivanova"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.test",
           "lists.example.org"]
WORDS = ("the of and to in is that for it as was with be by on not he this "
         "are or his from at which but have an they you were her she there "
         "one all we their has been would when if will more no out so said "
         "what up its about into than them can only other new some could "
         "time these two may then do first any my now such like our over man "
         "me even most made after also did many before must through back "
         "years where much your way well down should because each just those "
         "people how too little state good very make world still own see men "
         "work long get here between both life being under never day same "
         "another know while last might us great old year off come since "
         "against go came right used take three meeting budget report "
         "release server mailbox invoice project schedule review draft "
         "quarterly deadline customer support ticket").split()
SUBJECTS = ["Quarterly report", "Lunch on Friday?", "Server maintenance",
            "Invoice {n}", "Project kickoff", "Re: your question",
            "Holiday schedule", "Draft for review", "Meeting notes {n}",
            "Build failed on main", "Welcome aboard", "Budget {n} approved",
            "Ticket #{n} updated", "Release candidate {n}",
            "Photos from the trip", "Café menu für nächste Woche"]


def _encoded_word(text):
    raw = text.encode("utf-8")
    return "=?UTF-8?B?" + base64.b64encode(raw).decode("ascii") + "?="


def _address(rng, encode=True):
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = (first[0] + last).lower()
    local = "".join(c for c in local if c.isascii() and c.isalnum()) or "user"
    addr = f"{local}@{rng.choice(DOMAINS)}"
    name = f"{first} {last}"
    if not name.isascii():
        if encode:
            name = _encoded_word(name)
        return f"{name} <{addr}>"
    if "'" in name:
        return f"\"{name}\" <{addr}>"
    return f"{name} <{addr}>"


def _make_paragraph(rng, marker=False):
    n = rng.randint(20, 90)
    words = [rng.choice(WORDS) for _ in range(n)]
    if marker:
        words.insert(rng.randint(0, len(words)), SEARCH_WORD)
    para = " ".join(words).capitalize() + "."
    lines, line = [], ""
    for w in para.split(" "):
        if len(line) + len(w) + 1 > 72:
            lines.append(line)
            line = w
        else:
            line = (line + " " + w) if line else w
    lines.append(line)
    return "\r\n".join(lines)


_POOL = []


def _pool():
    """A fixed pool of wrapped paragraphs (its own seed), so a message's
    body is a run of pool paragraphs: building 100,000 messages word by
    word took a quarter of an hour; slicing the pool takes seconds."""
    if not _POOL:
        rng = random.Random(424242)
        _POOL.extend(_make_paragraph(rng) for _ in range(4096))
    return _POOL


def _paragraphs(rng, nbytes, marker):
    pool = _pool()
    # The first paragraph is made fresh (it carries the marker word when
    # there is one), the rest are a run of the pool from a random start.
    out = [_make_paragraph(rng, marker)]
    size = len(out[0]) + 4
    i = rng.randrange(len(pool))
    while size < nbytes:
        text = pool[i % len(pool)]
        out.append(text)
        size += len(text) + 4
        i += 1
    return "\r\n\r\n".join(out) + "\r\n"


def _body_size(rng):
    """Long-tailed: median ~8 KB message, ~10 % > 100 KB, ~1 % > 1 MB."""
    r = rng.random()
    if r < 0.01:
        return rng.randint(1_100_000, 3_000_000)
    if r < 0.10:
        return rng.randint(110_000, 900_000)
    # lognormal-ish around 6 KB of body (headers add ~1-2 KB)
    return int(min(90_000, max(300, rng.lognormvariate(8.7, 0.7))))


def _b64_lines(data):
    enc = base64.b64encode(data).decode("ascii")
    return "\r\n".join(enc[i:i + 76] for i in range(0, len(enc), 76)) + "\r\n"


def message(seed, index, size=None, to_addr=None, cap=None):
    """The bytes of message number index of the corpus with this seed.

    size: force the body size (e.g. 10_000 for the LMTP 10 KB scenario).
    cap: at most this body size, the kinds of message kept (bench/jmap.py:
    the same structures without the long tail of sizes).
    """
    rng = random.Random(seed * 1_000_003 + index)
    marker = rng.random() < 0.01
    body_size = size if size is not None else _body_size(rng)
    if cap is not None:
        body_size = min(body_size, cap)
    date = 1_700_000_000 + index * 600 + rng.randint(0, 599)
    thread = index // 4 if rng.random() < 0.5 else index
    subject = rng.choice(SUBJECTS).format(n=thread % 997)
    if not subject.isascii():
        subject = _encoded_word(subject)
    hdr = [
        "Return-Path: <bounce-%d@%s>" % (index, rng.choice(DOMAINS)),
        "Received: from mx%d.example.net (mx%d.example.net [192.0.2.%d])\r\n"
        "\tby mail.example.test with ESMTPS id %08x\r\n"
        "\tfor <demo@example.test>; %s" % (
            index % 7, index % 7, index % 250 + 1, index,
            time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(date))),
        "From: " + _address(rng),
        "To: " + (to_addr or _address(rng)),
    ]
    if rng.random() < 0.3:
        hdr.append("Cc: " + ", ".join(_address(rng)
                                       for _ in range(rng.randint(1, 4))))
    is_reply = thread != index and index % 4 != 0
    if is_reply:
        subject = "Re: " + subject
    hdr.append("Subject: " + subject)
    hdr.append("Date: " + time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                        time.gmtime(date)))
    hdr.append("Message-ID: <%d.%d@example.org>" % (seed, index))
    if is_reply:
        parent = "<%d.%d@example.org>" % (seed, thread * 4)
        hdr.append("In-Reply-To: " + parent)
        hdr.append("References: " + parent)
    if index % 100 == 37:
        # a field about 1 % of messages carry (SEARCH HEADER on it);
        # chosen by index: the rng's draws, so every other byte, stay
        hdr.append("List-Id: Loft bench announcements <%s>" % LIST_ID)
    hdr.append("MIME-Version: 1.0")

    kind = rng.random()
    if size is not None or kind < 0.45:
        text = _paragraphs(rng, body_size, marker)
        hdr.append("Content-Type: text/plain; charset=UTF-8")
        hdr.append("Content-Transfer-Encoding: 8bit")
        body = text
    elif kind < 0.80:
        text = _paragraphs(rng, body_size // 2, marker)
        html = ("<html><body><p>" +
                text.replace("\r\n\r\n", "</p>\r\n<p>") +
                "</p></body></html>\r\n")
        b = "=_alt_%d_%d" % (seed, index)
        hdr.append('Content-Type: multipart/alternative; boundary="%s"' % b)
        body = ("This is a multi-part message in MIME format.\r\n\r\n"
                "--%s\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n"
                "--%s\r\nContent-Type: text/html; charset=UTF-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n--%s--\r\n"
                % (b, text, b, html, b))
    else:
        text = _paragraphs(rng, min(4000, body_size // 4), marker)
        b = "=_mixed_%d_%d" % (seed, index)
        hdr.append('Content-Type: multipart/mixed; boundary="%s"' % b)
        parts = ["--%s\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                 "Content-Transfer-Encoding: 8bit\r\n\r\n%s" % (b, text)]
        remaining = max(1000, body_size - len(text))
        natt = rng.randint(1, 3)
        for a in range(natt):
            n = remaining // natt
            data = rng.randbytes(n * 3 // 4)
            name = rng.choice(["report.pdf", "photo.jpg", "data.xlsx",
                               "notes.docx", "archive.zip"])
            ctype = {"pdf": "application/pdf", "jpg": "image/jpeg",
                     "xlsx": "application/vnd.ms-excel",
                     "docx": "application/msword",
                     "zip": "application/zip"}[name.rsplit(".", 1)[1]]
            parts.append("--%s\r\nContent-Type: %s; name=\"%s\"\r\n"
                         "Content-Disposition: attachment; filename=\"%s\"\r\n"
                         "Content-Transfer-Encoding: base64\r\n\r\n%s"
                         % (b, ctype, name, name, _b64_lines(data)))
        body = "\r\n".join(parts) + "\r\n--%s--\r\n" % b
    return ("\r\n".join(hdr) + "\r\n\r\n" + body).encode("utf-8")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("count", type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="corpus")
    ap.add_argument("--size", type=int, default=None)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for i in range(args.count):
        data = message(args.seed, i, args.size)
        total += len(data)
        with open(os.path.join(args.out, "%06d.eml" % i), "wb") as f:
            f.write(data)
    print("%d messages, %d bytes" % (args.count, total), file=sys.stderr)


if __name__ == "__main__":
    main()
