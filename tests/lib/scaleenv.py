"""Scale-out for tests: loftd nodes on one PostgreSQL (docs/scale-out.md).

    from scaleenv import ScaleEnv, skip_without_postgres

    def main():
        if skip_without_postgres():
            return 77
        with ScaleEnv(nodes=2, extra={'imap': {'idle_keepalive': '1s'}}) \\
                as env:
            na, nb = env.nodes          # two started loftd (loftenv.Loft)
            ...
        return r.finish()

What every node shares: one database (env.conninfo, a fresh one of
env.pg unless the test gives its own) and one blob_dir (env.blob_dir,
a temporary directory: the file driver's shared directory, or the
spool of an s3 store). Each node is a loftenv.Loft with its own data_dir
and ports; the first node's setup makes the accounts (example.test,
alice@ and bob@), later nodes find them in the database.

    ScaleEnv(nodes=2,            # how many nodes
             extra=None,         # sections every node has
             node_extra=None,    # what node i has beside: a list, or a
                                 # function of i (a port of its own)
             store=None,         # keys added to [store] (postgres_timeout,
                                 # blobs = s3, ...)
             pg=None,            # a Postgres of the test's own (netns,
                                 # standby): not closed by the fixture
             conninfo=None,      # the [store] postgres string (a
                                 # multi-host one)
             auth_database=False,  # [auth] postgres: the accounts in a
                                   # database of their own
             start=True)         # False: nodes made, not started
    env.add_node(extra=None, start=True)   # one more (a loftctl-only
                                           # node with start=False)
    env.use_database(conninfo)   # every node's [store] postgres from now
                                 # (a proxy's, a fresh database)
    env.defer(fn)                # fn() once the nodes stopped, before
                                 # PostgreSQL stops (a proxy's close)
    env.store_section()          # the [store] section nodes get
    env.psql(sql)                # on the nodes' database

ScaleEnv(nodes=0) gives the database (env.pg, env.dbname) to prepare
before the first add_node. close() (or leaving the with block) stops the
nodes, last first, runs what was deferred, stops the PostgreSQL it
started and removes blob_dir.
"""

import re
import shutil
import tempfile

from loftenv import Loft
from pgenv import Postgres


def skip_without_postgres():
    """True (after the skip line) when PostgreSQL 15 is not installed:
    the test returns 77."""
    if Postgres.available():
        return False
    print('0 passed, 0 failed (skipped: no PostgreSQL 15 binaries)')
    return True


def merge(*extras):
    """{section: {key: value}} dicts merged in order (later wins)."""
    out = {}
    for e in extras:
        for sec, kv in (e or {}).items():
            out.setdefault(sec, {}).update(kv)
    return out


class ScaleEnv:
    def __init__(self, nodes=2, extra=None, node_extra=None, store=None,
                 pg=None, conninfo=None, auth_database=False, start=True):
        self.extra = dict(extra or {})
        self.store_extra = dict(store or {})
        self.nodes = []
        self._deferred = []
        self._own_pg = pg is None
        self.pg = None
        self.blob_dir = tempfile.mkdtemp(prefix='loft-blobs-')
        try:
            self.pg = pg if pg is not None else Postgres()
            self.use_database(conninfo or self.pg.new_database())
            if auth_database:
                self.extra = merge(self.extra, {
                    'auth': {'postgres': self.pg.new_database()}})
            for i in range(nodes):
                if callable(node_extra):
                    ne = node_extra(i)
                else:
                    ne = node_extra[i] if node_extra else None
                self.add_node(ne, start=start)
        except BaseException:
            self.close()
            raise

    def store_section(self):
        """The [store] section every node gets (before per-node extras)."""
        return dict({'backend': 'postgres', 'postgres': self.conninfo,
                     'blob_dir': self.blob_dir}, **self.store_extra)

    def add_node(self, extra=None, start=True):
        """A node on the shared database and blob_dir (started unless
        start is False); returns its Loft."""
        node = Loft(extra=merge({'store': self.store_section()}, self.extra,
                                extra), start=start)
        self.nodes.append(node)
        if start:
            node.start()
        return node

    def use_database(self, conninfo):
        """[store] postgres = conninfo for every node, those made (their
        config written again: a running one sees it at its next start)
        and those to come."""
        self.conninfo = conninfo
        m = re.search(r'dbname=(\S+)', conninfo)
        self.dbname = m.group(1) if m else 'loft'
        for node in self.nodes:
            node.sections['store']['postgres'] = conninfo
            node.write_config()

    def defer(self, fn):
        self._deferred.append(fn)

    def psql(self, sql):
        return self.pg.psql(sql, db=self.dbname)

    def close(self):
        try:
            for node in reversed(self.nodes):
                node.close()
        finally:
            try:
                for fn in reversed(self._deferred):
                    fn()
            finally:
                if self._own_pg and self.pg is not None:
                    self.pg.close()
                shutil.rmtree(self.blob_dir, True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
