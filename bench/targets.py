"""The two servers under test, behind one small interface the scenarios use:
host, port(proto), user_names(), password(user), memory() (bytes of PSS of
every process of the server), close().

Both get the same users. Loft runs from build/ with fsync on (its
durability contract); Dovecot from Debian with its default mail_fsync
(optimized), Maildir, passwd-file users, each on loopback only.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lib"))

from dovecotenv import Dovecot  # noqa: E402
from loftenv import Loft, free_port, test_cert  # noqa: E402


def pss_of(pid):
    """Proportional set size of one process, in bytes (0 if it is gone)."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(pid):
    """pid and every process below it."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid):
    """CPU time used by pid and its descendants, reaped children included."""
    hz = os.sysconf("SC_CLK_TCK")
    ticks = 0
    for p in descendants(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += sum(int(x) for x in fields[11:15])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / hz


def traced_pids(pids):
    """The pids (threads included) a tracer is attached to."""
    out = set()
    for pid in pids:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for t in tids:
            try:
                with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                    for line in f:
                        if line.startswith("TracerPid:") and \
                                int(line.split()[1]) != 0:
                            out.add(int(t))
            except OSError:
                pass
    return out


def all_threads(pids):
    n = 0
    for pid in pids:
        try:
            n += len(os.listdir("/proc/%d/task" % pid))
        except OSError:
            pass
    return n


class SyscallCount:
    """strace -f -c on every process of a server (threads and processes it
    forks meanwhile included), counting the sync calls: fsync, fdatasync,
    sync_file_range, syncfs, msync. Use as a context manager; counts()
    after the exit: {syscall: calls}."""

    SYSCALLS = "fsync,fdatasync,sync_file_range,syncfs,msync"

    def __init__(self, pids):
        import subprocess
        import tempfile
        import time
        self.out = tempfile.NamedTemporaryFile(prefix="bench-strace-",
                                               suffix=".txt", delete=False)
        self.out.close()
        args = ["strace", "-f", "-c", "-qq", "-e",
                "trace=" + self.SYSCALLS, "-o", self.out.name]
        for p in pids:
            args += ["-p", str(p)]
        self.pids = pids
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        # attached when every thread of every process has a tracer
        deadline = time.monotonic() + 60
        while len(traced_pids(pids)) < all_threads(pids):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("strace did not attach")
            time.sleep(0.05)
        self._counts = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        import signal
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)
        counts = {}
        with open(self.out.name) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 5 and parts[-1] in self.SYSCALLS.split(","):
                    counts[parts[-1]] = int(parts[3])
        os.unlink(self.out.name)
        self._counts = counts
        return False

    def counts(self):
        return self._counts or {}


def tree_bytes(top, classify=None):
    """{class: [apparent bytes, allocated bytes]} of the files under top;
    classify(relative path) names a file's class (default "all")."""
    out = {}
    for root, _dirs, files in os.walk(top):
        for f in files:
            p = os.path.join(root, f)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            k = classify(os.path.relpath(p, top)) if classify else "all"
            v = out.setdefault(k, [0, 0])
            v[0] += st.st_size
            v[1] += st.st_blocks * 512
    return out


def settle(pid, quiet=0.05, limit=60, step=0.25):
    """Waits until the server uses under quiet s of CPU in a second (its
    background work from earlier scenarios -- Loft's search indexer,
    Dovecot's index updates and FTS indexer-workers -- is done), at most
    limit seconds. Returns the time.monotonic() at which that quiet
    second began (within step): when the server's work was done."""
    import time
    n = round(1.0 / step)
    start = time.monotonic()
    deadline = start + limit
    samples = [(start, cpu_seconds(pid))]
    while time.monotonic() < deadline:
        time.sleep(step)
        samples.append((time.monotonic(), cpu_seconds(pid)))
        if len(samples) > n:
            t_old, c_old = samples[-1 - n]
            if samples[-1][1] - c_old < quiet:
                return t_old
    return time.monotonic()


BIG_USER = "big@example.test"
# the mailbox filled by MULTIAPPEND, and the disk scenario's two accounts
APPEND_USER = "append@example.test"
DISK_USERS = {"corpus": "disk-corpus@example.test",
              "plain": "disk-plain@example.test"}


def bench_users(n):
    """n ordinary users, plus BIG_USER who holds the big mailbox (and the
    other special accounts), left out of user_names() so other scenarios do
    not add to them."""
    users = {"user%03d@example.test" % i: "pw-%03d-secret" % i
             for i in range(n)}
    users[BIG_USER] = "large-mailbox-owner-pw"
    users[APPEND_USER] = "many-messages-owner-pw"
    for u in DISK_USERS.values():
        users[u] = "bytes-on-ext4-owner-pw"
    return users


def ordinary(users):
    """The accounts the scenarios spread their load over."""
    return sorted(u for u in users if u.startswith("user"))


class Target:
    """What both servers share: self.env (a Loft or a Dovecot of
    tests/lib) with .users and .proc."""

    def user_names(self):
        return ordinary(self.env.users)

    def password(self, user):
        return self.env.users[user]

    def memory(self):
        return sum(pss_of(p) for p in descendants(self.env.proc.pid))

    def pids(self):
        return descendants(self.env.proc.pid)

    def cpu(self):
        return cpu_seconds(self.env.proc.pid)

    # how long settle() waits at most for the background work
    settle_limit = 60

    def settle(self):
        return settle(self.env.proc.pid, limit=self.settle_limit)


class LoftTarget(Target):
    name = "loft"

    binaries = None    # (loftd, loftctl) of another build: bench/privsep.py

    def __init__(self, users, conns_per_user=20000, auth=None, more=None):
        self.host = "127.0.0.1"
        extra = {
            # info, not warn: loftenv waits for "loftd ready" (an info
            # line); Dovecot logs logins and deliveries at info too.
            "": {"log_level": "info"},
            # Production argon2 cost (loftenv's cheap test cost removed):
            # the login scenario measures the real hashing, cached or not.
            "auth": {"argon2_t_cost": None, "argon2_m_cost": None,
                     "argon2_parallelism": None},
            "limits": {"io_threads": "2", "worker_threads": "16",
                       "max_connections_per_ip": "0"},
            # every session comes from 127.0.0.1: the per-address
            # limit (default 200) would refuse bigidle's 201st session
            "imap": {"max_connections_per_user": str(conns_per_user),
                     "max_connections_per_user_ip": str(conns_per_user)},
            "imaps": {},
        }
        extra["auth"].update(auth or {})   # e.g. bench/login_flood.py
        for section, keys in (more or {}).items():   # e.g. bench/jmap.py
            extra.setdefault(section, {}).update(keys)
        self.env = Loft(users=users, extra=extra, start=False,
                        binaries=self.binaries)
        try:
            self.env.start()
        except BaseException:
            self.env.close()    # a loftd that started but never said ready
            raise

    def port(self, proto):
        return self.env.port(proto)

    def add_users(self, users):
        """New accounts while running (loftctl user add: the account's
        index is made by its first delivery, not here)."""
        for u, pw in users.items():
            self.env.add_user(u, pw)

    def disk(self, user):
        """The account's bytes on disk: loftctl user show's figures
        (index_bytes includes search_bytes; blob_bytes = the bodies and
        prefixes, in the index or in files) and the files' allocated
        size."""
        import re
        rc, out, err = self.env.loftctl("user", "show", user)
        if rc != 0:
            raise RuntimeError("loftctl user show: %s%s" % (out, err))
        d = {k: int(v) for k, v in re.findall(
            r"^  (index_bytes|search_bytes|blob_bytes) = (\d+)$", out, re.M)}
        uid = int(re.search(r"^id: (\d+)$", out, re.M).group(1))
        top = os.path.join(self.env.data_dir, "mail", "%02x" % (uid % 256),
                           str(uid))
        t = tree_bytes(top).get("all", [0, 0])
        return {"index": d["index_bytes"], "search": d["search_bytes"],
                "blob": d["blob_bytes"], "files": t[0], "allocated": t[1]}

    def memory_by_process(self):
        """PSS per process name (loftd, loftd-mail, loftd-auth, ...)."""
        out = {}
        for p in descendants(self.env.proc.pid):
            try:
                with open("/proc/%d/comm" % p) as f:
                    name = f.read().strip()
            except OSError:
                continue
            out[name] = out.get(name, 0) + pss_of(p)
        return out

    def restart(self):
        """A fresh process: memory freed by earlier scenarios stays in
        malloc's arenas and would hide what new connections cost. Waits
        for the background work of earlier scenarios first (the search
        indexer), so it does not resume, and count, in the new process."""
        settle(self.env.proc.pid)
        self.env.restart()

    def close(self):
        self.env.close()


def dovecot_fts_conf(fts):
    """Dovecot configuration lines for fts (None: none): "xapian" is
    Debian's dovecot-fts-xapian, substring search from 3 characters like
    Loft's trigram index, every message indexed when it is saved."""
    if fts is None:
        return ""
    if fts != "xapian":
        raise ValueError("unknown Dovecot FTS %r" % fts)
    if not os.path.exists("/usr/lib/dovecot/modules/"
                          "lib21_fts_xapian_plugin.so"):
        raise RuntimeError("--dovecot-fts xapian needs Debian's "
                           "dovecot-fts-xapian (sh scripts/deps.sh "
                           "bench)")
    return """
mail_plugins = $mail_plugins fts fts_xapian
plugin {
  fts = xapian
  fts_xapian = partial=3 full=20 verbose=0
  fts_autoindex = yes
  fts_enforced = yes
  fts_decoder =
}
service indexer-worker {
  process_limit = 2
}
"""


class DovecotTarget(Target):
    name = "dovecot"

    def __init__(self, users, max_conns=12000, more="", fts=None):
        """more: configuration appended after the rest (bench/acl.py: the
        acl plugins); @MAILDIR@ in it is the directory of the homes.
        fts: None (Dovecot as shipped, no search index), or "xapian"
        (Debian's dovecot-fts-xapian, substring search from 3 characters
        like Loft's trigram index, every message indexed when it is saved:
        the like-for-like comparison for Loft's delivery, which indexes
        every message too)."""
        self.host = "127.0.0.1"
        self.fts = fts
        if fts:
            # its indexer-workers index what LMTP saved for minutes after
            # the last reply: the next run (Loft's) must not start before
            # they are done, and their CPU is the delivery's
            self.settle_limit = 1800
        cert, key = test_cert()
        self.imaps_port = free_port()
        extra = """
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
service imap-login {{
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
  process_limit = {n}
  client_limit = 1000
  service_count = 0
}}
service imap {{
  process_limit = {n}
}}
default_process_limit = {n}
default_client_limit = {n}
mail_max_userip_connections = {n}
service auth {{
  client_limit = {n4}
}}
service anvil {{
  client_limit = {n4}
}}
# The same folders Loft gives every account, with their special use.
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    auto = create
    special_use = \\Sent
  }}
  mailbox Drafts {{
    auto = create
    special_use = \\Drafts
  }}
  mailbox Trash {{
    auto = create
    special_use = \\Trash
  }}
  mailbox Junk {{
    auto = create
    special_use = \\Junk
  }}
  mailbox Archive {{
    auto = create
    special_use = \\Archive
  }}
}}
""".format(cert=cert, key=key, imaps=self.imaps_port, n=max_conns,
           n4=max_conns * 4 + 1000)
        extra += dovecot_fts_conf(fts)
        self.env = Dovecot(users=users, extra=extra + more, start=False)
        if "@MAILDIR@" in more:
            with open(self.env.config_path) as f:
                conf = f.read().replace("@MAILDIR@", self.env.mail_dir)
            with open(self.env.config_path, "w") as f:
                f.write(conf)
        try:
            self.env.start()
        except BaseException:
            self.env.close()
            raise

    def port(self, proto):
        if proto == "imaps":
            return self.imaps_port
        return self.env.ports[proto]

    def add_users(self, users):
        """New accounts while running: passwd-file is read again when it
        changes."""
        self.env.users.update(users)
        self.env._write_passwd()

    def disk(self, user):
        """The account's bytes on disk: message files (Maildir cur/new/tmp
        of every folder) as "blob", everything else (dovecot.index*,
        dovecot-uidlist, ...) as "index"; no FTS plugin, so no search."""
        def classify(rel):
            parts = rel.split(os.sep)
            if "xapian-indexes" in parts:
                return "search"
            return "blob" if len(parts) >= 2 and \
                parts[-2] in ("cur", "new", "tmp") else "index"
        t = tree_bytes(os.path.join(self.env.mail_dir, user), classify)
        b, i = t.get("blob", [0, 0]), t.get("index", [0, 0])
        s = t.get("search", [0, 0])
        # as Loft's: index_bytes includes the search index
        return {"index": i[0] + s[0], "search": s[0], "blob": b[0],
                "files": b[0] + i[0] + s[0],
                "allocated": b[1] + i[1] + s[1]}

    def restart(self):
        settle(self.env.proc.pid)
        self.env.stop()
        self.env.start()

    def close(self):
        self.env.close()
