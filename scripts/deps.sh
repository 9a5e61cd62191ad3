#!/bin/sh
# Installs the Debian packages Loft needs to build, test and benchmark,
# when any is missing. Safe to run again; never starts system services
# (a policy-rc.d that returns 101 is put in place first). Run as root.
# Add a package here (one per line in the right list) when code needs it.
set -eu

BUILD_PACKAGES="
build-essential
cmake
pkg-config
clang
libclang-rt-14-dev
libevent-dev
libssl-dev
libsqlite3-dev
libargon2-dev
zlib1g-dev
libdeflate-dev
libjansson-dev
libexpat1-dev
libcrypt-dev
libunbound-dev
nettle-dev
libpsl-dev
libcurl4-openssl-dev
libpq-dev
libidn-dev
libseccomp-dev
libsystemd-dev
openssl
python3
"

# `make deb` (debian/): debhelper builds the package.
DEB_PACKAGES="
debhelper
dpkg-dev
"

TEST_PACKAGES="
lintian
systemd
testssl.sh
dovecot-imapd
dovecot-pop3d
dovecot-lmtpd
isync
fetchmail
getmail6
postfix
nodejs
npm
chromium
procps
curl
swaks
python3-dkim
python3-spf
python3-dnspython
opendkim
opendkim-tools
unbound
nsd
ldnsutils
rspamd
iproute2
gsasl
stress-ng
sieve-connect
python3-sievelib
dovecot-sieve
dovecot-managesieved
postgresql-15
postgresql-contrib
"

# Only for the benches (`make bench-jmap`, bench/webmail.mjs --roundcube).
# Cyrus's JMAP beside Loft's (bench/jmap.py): cyrus-imapd itself conflicts
# with dovecot-imapd and is not needed: the bench runs Cyrus's master with
# its httpd (cyrus-caldav) and lmtpd, and fills its mailbox under eatmydata.
# Roundcube beside the webmail, served by php's built-in server, never by a
# system service. Dovecot with a search index (bench/run.py --dovecot-fts).
BENCH_PACKAGES="
cyrus-common
cyrus-caldav
cyrus-admin
eatmydata
roundcube-core
roundcube-sqlite3
php-cli
php-sqlite3
dovecot-fts-xapian
"

# `make test-scaleout` (tests/lib/cephenv.py): a private Ceph cluster with
# its S3 gateway; faketime for nodes whose clocks are apart;
# pg_auto_failover's monitor extension and pg_autoctl for the failover
# recipe of docs/scale-out.md (tests/lib/autofailover.py).
SCALEOUT_PACKAGES="
ceph-mon
ceph-osd
ceph-common
radosgw
faketime
postgresql-15-auto-failover
pg-auto-failover-cli
"

want="$BUILD_PACKAGES"
case "${1:-}" in
deb) want="$BUILD_PACKAGES $DEB_PACKAGES" ;;
test) want="$BUILD_PACKAGES $DEB_PACKAGES $TEST_PACKAGES" ;;
scaleout) want="$BUILD_PACKAGES $DEB_PACKAGES $TEST_PACKAGES $SCALEOUT_PACKAGES" ;;
bench) want="$BUILD_PACKAGES $DEB_PACKAGES $TEST_PACKAGES $BENCH_PACKAGES" ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# Node.js may come from elsewhere than Debian (the CI image has node 20).
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
	missing=$(echo "$missing" | tr ' ' '\n' | grep -vx -e nodejs -e npm | tr '\n' ' ')
fi
missing=$(echo $missing)
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages: $missing (run as root to install them)" >&2
	exit 1
fi
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
fi
# Several builds may run at once (engineers, CI steps): one installer at a
# time; whoever waited finds the packages there and installs nothing again.
if [ -z "${LOFT_DEPS_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
	export LOFT_DEPS_LOCKED=1
	exec flock /var/lock/loft-deps.lock sh "$0" "$@"
fi
echo "deps: installing $missing"
export DEBIAN_FRONTEND=noninteractive
# postfix asks questions unless told
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends $missing >/dev/null
