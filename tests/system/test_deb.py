#!/usr/bin/env python3
"""`make deb` and `make install`: Loft as an admin installs it.

`make install` (its last step, `cmake --install`, with DESTDIR and the
default PREFIX /usr/local): loftd in sbin, loftctl in bin, loft.service
(naming /usr/local/sbin/loftd) in lib/systemd/system, the docs and the
example configuration.

Builds it (DEB_BUILD_OPTIONS=nocheck, into a temp dir) and checks:
- the name dist/loft_<CMake's version>_<dpkg arch>.deb;
- it holds /usr/sbin/loftd, /usr/bin/loftctl, loft.service,
  /var/lib/loft and /etc/loft/loftd.conf (a conffile);
- unpacked with dpkg -x, its loftd --version works and its loftd --check
  passes on the shipped configuration (paths that the postinst or systemd
  would provide - the certificate, /run/loft, /var/lib/loft - moved into
  the unpacked tree, nothing else changed);
- systemd-analyze verify accepts the shipped unit without a warning, and
  it has what the service needs (Type=notify, ExecReload with SIGHUP,
  RuntimeDirectory, ProtectSystem=strict, ...);
- lintian finds no error;
- postinst (run with DPKG_ROOT, adduser and friends stubbed) makes the
  self-signed pair once, never replaces an existing certificate or key;
  purge removes only the pair postinst made and keeps the mail.

The package is the same whatever the build flavour, so the sanitizer pass
does not build it a second time.
"""

import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile

from loftenv import LOFTCTL, Results, SANITIZE, SRC

R = Results()


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def cmake_version():
    text = open(os.path.join(SRC, 'CMakeLists.txt')).read()
    return re.search(r'project\(loft VERSION ([0-9.]+)', text).group(1)


def build(out):
    env = dict(os.environ, DEB_BUILD_OPTIONS='nocheck', LOFT_DEB_OUT=out)
    p = run(['sh', os.path.join(SRC, 'scripts', 'deb.sh')], env=env,
            timeout=1800)
    R.check('make deb succeeds', p.returncode == 0, p.stdout + p.stderr)
    return p.returncode == 0


def test_contents(deb):
    p = run(['dpkg-deb', '-c', deb])
    names = [l.split()[-1] for l in p.stdout.splitlines()]
    for path in ('./usr/sbin/loftd', './usr/bin/loftctl',
                 './lib/systemd/system/loft.service', './var/lib/loft/',
                 './etc/loft/loftd.conf', './usr/share/man/man8/loftd.8.gz',
                 './usr/share/man/man8/loftctl.8.gz'):
        R.check('package holds ' + path, path in names, names)
    with tempfile.TemporaryDirectory() as d:
        run(['dpkg-deb', '-e', deb, d])
        conffiles = open(os.path.join(d, 'conffiles')).read().split()
        R.check('loftd.conf is a conffile',
                conffiles == ['/etc/loft/loftd.conf'], conffiles)
        control = open(os.path.join(d, 'control')).read()
        R.check('depends on adduser and openssl',
                re.search(r'^Depends:.*\badduser\b.*\bopenssl\b', control,
                          re.M) is not None, control)


def shipped_config_check(root):
    """loftd --check of the unpacked loftd on the shipped config, with the
    paths the system provides at run time moved into root."""
    conf = open(os.path.join(root, 'etc/loft/loftd.conf')).read()
    R.check('shipped config: data_dir /var/lib/loft',
            re.search(r'^data_dir = /var/lib/loft$', conf, re.M), conf)
    R.check('shipped config: IMAP on IPv4 and IPv6',
            re.search(r'^listen = \*:143$', conf, re.M), conf)
    etc = os.path.join(root, 'etc/loft')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048',
                    '-nodes', '-days', '2', '-subj', '/CN=localhost',
                    '-keyout', os.path.join(etc, 'key.pem'),
                    '-out', os.path.join(etc, 'cert.pem')],
                   check=True, capture_output=True)
    os.makedirs(os.path.join(root, 'run/loft'))
    moved = (conf.replace('/etc/loft/', etc + '/')
             .replace('/var/lib/loft', os.path.join(root, 'var/lib/loft'))
             .replace('/run/loft/', os.path.join(root, 'run/loft') + '/'))
    # postinst (stubbed here) creates the loft user; without it, --check
    # would rightly refuse the shipped `user = loft`.
    user = 'loft'
    try:
        pwd.getpwnam('loft')
    except KeyError:
        user = 'nobody'
        moved = re.sub(r'^user = loft$', 'user = nobody', moved, flags=re.M)
    # ... and gives it /var/lib/loft (dpkg-statoverride), which dpkg -x
    # unpacked as root's: --check rightly refuses a data_dir owned by
    # someone else.
    if os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        os.chown(os.path.join(root, 'var/lib/loft'), pw.pw_uid, pw.pw_gid)
    R.check('shipped config: user = loft',
            re.search(r'^user = loft$', conf, re.M), conf)
    path = os.path.join(etc, 'check.conf')
    with open(path, 'w') as f:
        f.write(moved)
    loftd = os.path.join(root, 'usr/sbin/loftd')
    p = run([loftd, '--version'])
    R.check('loftd --version', p.returncode == 0 and
            p.stdout.strip() == 'loftd ' + cmake_version(), p.stdout)
    p = run([os.path.join(root, 'usr/bin/loftctl'), '--version'])
    R.check('loftctl --version', p.returncode == 0 and
            p.stdout.strip() == 'loftctl ' + cmake_version(), p.stdout)
    p = run([loftd, '--config', path, '--check'])
    R.check('unpacked loftd --check passes on the shipped config',
            p.returncode == 0 and p.stdout.strip() == path + ': ok',
            p.stdout + p.stderr)
    R.check('--check quiet', p.stderr == '', p.stderr)


def test_unit(root):
    unit = open(os.path.join(root, 'lib/systemd/system/loft.service')).read()
    for line in ('Type=notify', 'ExecReload=/bin/kill -HUP $MAINPID',
                 'ExecStart=/usr/sbin/loftd --config /etc/loft/loftd.conf',
                 'RuntimeDirectory=loft', 'ProtectSystem=strict',
                 'ReadWritePaths=/var/lib/loft', 'NoNewPrivileges=yes',
                 'PrivateTmp=yes', 'ProtectHome=yes', 'Restart=on-failure',
                 'WantedBy=multi-user.target'):
        R.check('unit: ' + line, re.search('^' + re.escape(line) + '$',
                                           unit, re.M), unit)
    R.check('unit: LimitNOFILE', re.search(r'^LimitNOFILE=\d+$', unit, re.M))
    caps = re.search(r'^CapabilityBoundingSet=(.*)$', unit, re.M)
    caps = set(caps.group(1).split()) if caps else set()
    R.check('unit: only the parent\'s capabilities', caps ==
            {'CAP_NET_BIND_SERVICE', 'CAP_SETUID', 'CAP_SETGID', 'CAP_CHOWN',
             'CAP_KILL', 'CAP_SYS_CHROOT', 'CAP_DAC_READ_SEARCH'}, caps)
    # systemd-analyze checks executables exist: point them at the tree
    path = os.path.join(root, 'verify', 'loft.service')
    os.makedirs(os.path.dirname(path))
    with open(path, 'w') as f:
        f.write(unit.replace('/usr/sbin/loftd',
                             os.path.join(root, 'usr/sbin/loftd')))
    p = run(['systemd-analyze', 'verify', path])
    R.check('systemd-analyze verify', p.returncode == 0 and
            p.stdout.strip() == '' and p.stderr.strip() == '',
            p.stdout + p.stderr)


def test_lintian(deb):
    # lintian wants no root: a copy nobody can read as its own user
    p = run(['lintian', '--no-tag-display-limit', deb])
    errors = [l for l in p.stdout.splitlines() if l.startswith('E:')]
    R.check('lintian: no error', p.returncode == 0 and not errors,
            p.stdout + p.stderr)
    R.check('lintian: manual pages present and well formed',
            'no-manual-page' not in p.stdout and
            'groff-message' not in p.stdout, p.stdout)


def test_manual_pages():
    """Every verb `loftctl --help` lists is in loftctl.8 (the page is
    written by hand: a new verb must be added there too)."""
    page = open(os.path.join(SRC, 'packaging', 'man', 'loftctl.8')).read()
    plain = re.sub(r'\\f[BIR]|\\-|\\', '', page)
    plain = re.sub(r'^\.[A-Z]+ ?', '', plain, flags=re.M)
    words = ' '.join(plain.split())
    p = run([LOFTCTL, '--help'])
    verbs = []
    for line in (p.stdout + p.stderr).splitlines():
        m = re.match(r'^  ([a-z]+(?: [a-z]+)?)\b', line)
        if m:
            verbs.append(m.group(1))
    R.check('loftctl --help lists verbs', len(verbs) > 20, p.stdout)
    missing = [v for v in verbs if v not in words]
    R.check('loftctl.8 has every verb of loftctl --help', not missing,
            missing)


def stub_bin(d):
    """adduser, getent, chown, dpkg-statoverride, hostname that record
    their calls instead of changing the system."""
    os.makedirs(d)
    log = os.path.join(d, 'calls')
    for name, body in (('adduser', 'exit 0'), ('chown', 'exit 0'),
                       ('getent', 'exit 2'),   # the user does not exist yet
                       ('dpkg-statoverride', 'exit 1'),
                       ('hostname', 'echo mail.example.test')):
        p = os.path.join(d, name)
        with open(p, 'w') as f:
            f.write('#!/bin/sh\necho "%s $*" >> %s\n%s\n' % (name, log, body))
        os.chmod(p, 0o755)
    return log


def maint(root, script, arg, stubs):
    env = dict(os.environ, DPKG_ROOT=root,
               PATH=stubs + ':' + os.environ.get('PATH', ''))
    return run(['sh', os.path.join(root, 'DEBIAN', script), arg], env=env)


def fingerprint(path):
    return run(['openssl', 'x509', '-in', path, '-noout', '-fingerprint',
                '-sha256']).stdout


def test_maintainer_scripts(deb, work):
    root = os.path.join(work, 'root')
    run(['dpkg-deb', '-R', deb, root])
    stubs = os.path.join(work, 'stubs')
    log = stub_bin(stubs)
    etc = os.path.join(root, 'etc/loft')
    p = maint(root, 'postinst', 'configure', stubs)
    R.check('postinst configure', p.returncode == 0, p.stderr)
    calls = open(log).read()
    R.check('postinst adds the loft system user',
            'adduser --system --group --home /var/lib/loft --no-create-home'
            ' --gecos Loft mail server --quiet loft\n' in calls, calls)
    R.check('postinst gives /var/lib/loft to loft',
            'chown loft:loft ' + os.path.join(root, 'var/lib/loft') in calls,
            calls)
    key = os.path.join(etc, 'key.pem')
    cert = os.path.join(etc, 'cert.pem')
    R.check('self-signed pair made', os.path.exists(cert) and
            os.path.exists(key), os.listdir(etc))
    R.check('key is 0600', stat.S_IMODE(os.stat(key).st_mode) == 0o600,
            oct(os.stat(key).st_mode))
    R.check('certificate names the host', 'mail.example.test' in
            run(['openssl', 'x509', '-in', cert, '-noout', '-subject']).stdout)
    first = fingerprint(cert)
    p = maint(root, 'postinst', 'configure', stubs)
    R.check('second configure keeps the pair', p.returncode == 0 and
            fingerprint(cert) == first)
    # an admin's own key only (certbot elsewhere): nothing is made
    os.remove(cert)
    p = maint(root, 'postinst', 'configure', stubs)
    R.check('lone key left alone', p.returncode == 0 and
            not os.path.exists(cert) and 'only one of' in p.stderr, p.stderr)
    # purge: the mail stays; a replaced certificate stays
    mail = os.path.join(root, 'var/lib/loft/mail/01/1/index.db')
    os.makedirs(os.path.dirname(mail))
    open(mail, 'w').write('mail')
    os.remove(key)
    maint(root, 'postinst', 'configure', stubs)     # a new self-signed pair
    p = maint(root, 'postrm', 'purge', stubs)
    R.check('purge', p.returncode == 0, p.stderr)
    R.check('purge removes the self-signed pair', not os.path.exists(cert)
            and not os.path.exists(key), os.listdir(etc) if
            os.path.isdir(etc) else None)
    R.check('purge keeps the mail', open(mail).read() == 'mail')
    os.makedirs(etc, exist_ok=True)
    maint(root, 'postinst', 'configure', stubs)
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048',
                    '-nodes', '-days', '2', '-subj', '/CN=real',
                    '-keyout', key, '-out', cert], check=True,
                   capture_output=True)
    p = maint(root, 'postrm', 'purge', stubs)
    R.check('purge keeps a certificate the admin put there',
            os.path.exists(cert) and os.path.exists(key), p.stderr)


def test_install(work):
    build = os.environ.get('LOFT_BUILD', os.path.join(SRC, 'build'))
    dest = os.path.join(work, 'destdir')
    env = dict(os.environ, DESTDIR=dest)
    p = run(['cmake', '--install', build, '--prefix', '/usr/local'], env=env)
    R.check('install', p.returncode == 0, p.stdout + p.stderr)
    base = dest + '/usr/local'
    for rel in ('sbin/loftd', 'bin/loftctl', 'lib/systemd/system/loft.service',
                'share/doc/loft/examples/loftd.conf',
                'share/doc/loft/running.md', 'share/doc/loft/postfix.md',
                'share/doc/loft/config.md'):
        R.check('installs ' + rel, os.path.exists(os.path.join(base, rel)))
    # every document a manual page sends the reader to is installed
    named = set()
    for page in ('loftd.8', 'loftctl.8'):
        text = open(os.path.join(SRC, 'packaging', 'man', page)).read()
        named.update(re.findall(r'/usr/share/doc/loft/([\w.-]+\.md)', text))
    R.check('manual pages name documents', len(named) >= 4, named)
    for doc in sorted(named):
        R.check('installs share/doc/loft/%s (named in a manual page)' % doc,
                os.path.exists(os.path.join(base, 'share/doc/loft', doc)))
    R.check('loftd executable', os.access(base + '/sbin/loftd', os.X_OK))
    unit = open(base + '/lib/systemd/system/loft.service').read()
    R.check('installed unit runs /usr/local/sbin/loftd',
            'ExecStart=/usr/local/sbin/loftd --config /etc/loft/loftd.conf'
            in unit, unit)
    R.check('installed unit points at the docs',
            'Documentation=file:/usr/local/share/doc/loft/running.md' in unit)


def test_build_depends():
    """Every library CMake looks for (pkg_check_modules), and every module
    their .pc files require, comes from a package debian/control names in
    Build-Depends, so the package builds on a fresh Debian 12 after
    `apt-get build-dep` / mk-build-deps."""
    control = open(os.path.join(SRC, 'debian', 'control')).read()
    m = re.search(r'^Build-Depends:(.*?)^\S', control, re.M | re.S)
    listed = {re.split(r'[\s(\[]', d.strip())[0]
              for d in (m.group(1) if m else '').split(',') if d.strip()}
    modules = set()
    for top, dirs, files in os.walk(SRC):
        dirs[:] = [d for d in dirs if d not in (
            '.git', 'node_modules') and not d.startswith('build')]
        for f in files:
            if f != 'CMakeLists.txt':
                continue
            text = open(os.path.join(top, f)).read()
            for args in re.findall(r'pkg_check_modules\(([^)]*)\)', text):
                words = args.split()
                modules.update(w for w in words[1:] if w not in (
                    'REQUIRED', 'QUIET', 'IMPORTED_TARGET', 'GLOBAL'))
    R.check('CMake looks for some libraries', len(modules) >= 8,
            sorted(modules))
    # pkg-config also needs what their .pc files require, private or not
    # (libunbound.pc: hogweed and nettle, which libunbound-dev does not
    # pull in).
    todo = list(modules)
    while todo:
        mod = todo.pop()
        for flag in ('--print-requires', '--print-requires-private'):
            for line in run(['pkg-config', flag, mod]).stdout.splitlines():
                req = line.split()[0] if line.split() else ''
                if req and req not in modules:
                    modules.add(req)
                    todo.append(req)
    for mod in sorted(modules):
        p = run(['pkg-config', '--variable=pcfiledir', mod])
        pc = os.path.join(p.stdout.strip(), mod + '.pc')
        owner = run(['dpkg', '-S', os.path.realpath(pc)])
        if owner.returncode != 0:
            owner = run(['dpkg', '-S', pc])
        pkg = owner.stdout.split(':')[0].strip()
        R.check('Build-Depends names %s (for %s)' % (pkg or '?', mod),
                pkg in listed, owner.stdout + owner.stderr)


def main():
    test_build_depends()
    test_manual_pages()
    if SANITIZE:
        print('the package does not depend on the build flavour: built and '
              'checked in the release pass')
        print('0 passed, 0 failed')
        return 0
    work = tempfile.mkdtemp(prefix='loft-deb-test-')
    try:
        out = os.path.join(work, 'dist')
        if not build(out):
            return R.finish()
        arch = run(['dpkg', '--print-architecture']).stdout.strip()
        name = 'loft_%s_%s.deb' % (cmake_version(), arch)
        debs = os.listdir(out)
        R.check('file name ' + name, debs == [name], debs)
        deb = os.path.join(out, name)
        if not os.path.exists(deb):
            return R.finish()
        test_contents(deb)
        root = os.path.join(work, 'x')
        run(['dpkg', '-x', deb, root])
        shipped_config_check(root)
        test_unit(root)
        test_lintian(deb)
        test_maintainer_scripts(deb, work)
        test_install(work)
    finally:
        shutil.rmtree(work, True)
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
