#!/bin/sh
# The body of `make run`: a demo Loft on 127.0.0.1 and [::1] with
# everything under ./run/ (config, data, a self-signed certificate for
# localhost, the demo password), created on the first run and reused after.
# Prints the demo account and how to use it, then runs loftd in the
# foreground (Ctrl-C stops). `make test-tls` runs testssl.sh on its IMAPS
# and STARTTLS ports.
#
#   IMAP 1143  IMAPS 1993  POP3 1110  POP3S 1995  LMTP 2424
#   SMTP 2525 (MX)  submission 1587 (STARTTLS)  submissions 1465 (TLS)
#   ManageSieve 14190 (STARTTLS)
#   HTTPS 8443 (webmail, JMAP, client set-up)  metrics 9180
#   LOFT_PORT_OFFSET=N (make run PORT_OFFSET=N, a multiple of 1000) adds N
#   to each, for a second demo beside another Loft.
set -eu

BUILD=${LOFT_BUILD:-build}
RUN=${LOFT_RUN:-run}
LOFTD=$BUILD/loftd
LOFTCTL=$BUILD/loftctl
CONF=$RUN/loftd.conf
USER=demo@example.test
OFFSET=${LOFT_PORT_OFFSET:-0}
[ -n "$OFFSET" ] || OFFSET=0

for bin in "$LOFTD" "$LOFTCTL"; do
	if [ ! -x "$bin" ]; then
		echo "demo: $bin is missing; run 'make build' first" >&2
		exit 1
	fi
done

case "$OFFSET" in
*[!0-9]*)
	echo "demo: PORT_OFFSET must be a number (a multiple of 1000), not '$OFFSET'" >&2
	exit 1 ;;
esac
if [ $((OFFSET % 1000)) -ne 0 ] || [ "$OFFSET" -gt 56000 ]; then
	echo "demo: PORT_OFFSET must be a multiple of 1000 up to 56000, not $OFFSET" >&2
	exit 1
fi
IMAP=$((1143 + OFFSET)) IMAPS=$((1993 + OFFSET))
POP3=$((1110 + OFFSET)) POP3S=$((1995 + OFFSET)) LMTP=$((2424 + OFFSET))
HTTPS=$((8443 + OFFSET)) METRICS=$((9180 + OFFSET))
SMTP=$((2525 + OFFSET)) SUBMISSION=$((1587 + OFFSET))
SUBMISSIONS=$((1465 + OFFSET)) MANAGESIEVE=$((14190 + OFFSET))

mkdir -p "$RUN"
chmod 700 "$RUN"
RUN_ABS=$(cd "$RUN" && pwd)

# A demo already running from this run/ answers on its control socket.
if [ -s "$CONF" ] && status=$("$LOFTCTL" --config "$CONF" status 2>/dev/null); then
	echo "demo: a demo already runs from $RUN/ ($status); stop it (Ctrl-C" \
		"where it runs) or use another directory" >&2
	exit 1
fi

# TLS as a real server has it, so clients and testssl.sh can check it: a
# demo CA (run/ca.pem, trust it in a client to connect without warnings)
# issues a one-year certificate for localhost that names where the CA's
# revocation list is; run/cert.pem holds it and the CA (the chain loftd
# sends). Made again when missing, from an older demo (self-signed) or
# expiring within 30 days.
make_certs() {
	ca=$RUN_ABS/ca
	rm -rf "$ca"
	mkdir -p "$ca"
	(
	umask 077
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
		-subj "/CN=Loft demo CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-keyout "$ca/ca.key" -out "$RUN_ABS/ca.pem"
	openssl req -new -newkey rsa:2048 -nodes -subj /CN=localhost \
		-keyout "$RUN_ABS/key.pem" -out "$ca/leaf.csr"
	cat > "$ca/leaf.ext" <<EXT
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
crlDistributionPoints = URI:file://$RUN_ABS/ca.crl
EXT
	openssl x509 -req -in "$ca/leaf.csr" -CA "$RUN_ABS/ca.pem" \
		-CAkey "$ca/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
		-days 365 -sha256 -extfile "$ca/leaf.ext" -out "$ca/leaf.pem"
	: > "$ca/index.txt"
	echo 01 > "$ca/crlnumber"
	cat > "$ca/ca.cnf" <<CNF
[ca]
default_ca = demo
[demo]
database = $ca/index.txt
crlnumber = $ca/crlnumber
default_md = sha256
default_crl_days = 3650
CNF
	openssl ca -config "$ca/ca.cnf" -gencrl -keyfile "$ca/ca.key" \
		-cert "$RUN_ABS/ca.pem" -out "$RUN_ABS/ca.crl"
	cat "$ca/leaf.pem" "$RUN_ABS/ca.pem" > "$RUN_ABS/cert.pem"
	) >/dev/null 2>&1
	chmod 600 "$RUN_ABS/key.pem"
	chmod 644 "$RUN_ABS/cert.pem" "$RUN_ABS/ca.pem" "$RUN_ABS/ca.crl"
}
if [ ! -s "$RUN/cert.pem" ] || [ ! -s "$RUN/key.pem" ] || [ ! -s "$RUN/ca.pem" ] ||
   ! openssl x509 -in "$RUN/cert.pem" -noout -checkend 2592000 >/dev/null 2>&1; then
	make_certs
	if ! openssl verify -CAfile "$RUN/ca.pem" "$RUN/cert.pem" >/dev/null 2>&1; then
		echo "demo: cannot make the demo certificate (openssl)" >&2
		exit 1
	fi
fi

# IPv6 loopback where the machine has it (some containers do not).
HOSTS="127.0.0.1"
if grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6 2>/dev/null; then
	HOSTS="127.0.0.1 [::1]"
fi
listen() {
	out=""
	for h in $HOSTS; do
		out="${out:+$out, }$h:$1"
	done
	echo "$out"
}

# The config is demo.sh's own (its first line says so) and follows
# PORT_OFFSET; one written by hand is kept as it is.
MARK="# Loft demo configuration (scripts/demo.sh), ports +$OFFSET"
if [ ! -s "$CONF" ] || { head -1 "$CONF" | grep -q '^# Loft demo configuration' &&
			 [ "$(head -1 "$CONF")" != "$MARK" ]; }; then
	cat > "$CONF" <<CONF
$MARK; rewritten when
# PORT_OFFSET changes (remove this first line to keep your edits). See
# docs/config.md.
data_dir = $RUN_ABS/data
hostname = localhost
log_level = info

[tls]
cert = $RUN_ABS/cert.pem
key = $RUN_ABS/key.pem

[imap]
listen = $(listen $IMAP)

[imaps]
listen = $(listen $IMAPS)

[pop3]
listen = $(listen $POP3)

[pop3s]
listen = $(listen $POP3S)

[lmtp]
listen = $(listen $LMTP)

[smtp]
listen = $(listen $SMTP)

[submission]
listen = $(listen $SUBMISSION)

[submissions]
listen = $(listen $SUBMISSIONS)

[managesieve]
listen = $(listen $MANAGESIEVE)

[https]
listen = $(listen $HTTPS)

[metrics]
listen = 127.0.0.1:$METRICS
CONF
fi
# HTTPS (webmail, JMAP, autoconfig) and the admin metrics listener; a
# hand-written run/ config made before they existed gets them added.
if ! grep -q '^\[https\]' "$CONF"; then
	cat >> "$CONF" <<CONF

[https]
listen = 127.0.0.1:$HTTPS

[metrics]
listen = 127.0.0.1:$METRICS
CONF
fi

# The demo secret: generated once, kept in run/ (mode 600).
SECRET_FILE=$RUN/demo-secret
# 16 random characters pass the password policy ([auth]
# password_min_length, 12) unless they happen to hold the name "demo".
while [ ! -s "$SECRET_FILE" ] || grep -qi demo "$SECRET_FILE"; do
	umask 077
	openssl rand -base64 18 | tr -d '/+=\n' | cut -c1-16 > "$SECRET_FILE"
	umask 022
done
SECRET=$(cat "$SECRET_FILE")

"$LOFTCTL" --config "$CONF" domain add example.test >/dev/null 2>&1 || true
if ! printf '%s\n' "$SECRET" | "$LOFTCTL" --config "$CONF" user add "$USER" \
		>/dev/null 2>&1; then
	# The account exists already: make sure it has the kept secret.
	if ! printf '%s\n' "$SECRET" | "$LOFTCTL" --config "$CONF" user passwd \
			"$USER" >/dev/null 2>"$RUN/loftctl.err"; then
		echo "demo: cannot set up $USER (see $RUN/loftctl.err)" >&2
		exit 1
	fi
fi

# The ports as configured (a hand-written config may differ).
port_of() {
	sed -n "/^\[$1\]/,/^\[/s/^listen *= *[^,]*:\([0-9]*\).*/\1/p" "$CONF" | head -1
}
IMAP=$(port_of imap) LMTP=$(port_of lmtp)
SMTP_PORTS=""
if grep -q '^\[submission\]' "$CONF"; then
	SMTP_PORTS=", SMTP $(port_of smtp), submission $(port_of submission)"
	SMTP_PORTS="$SMTP_PORTS (STARTTLS), submissions $(port_of submissions)"
fi

echo "demo: $USER password: $SECRET"
echo "demo: listening on $HOSTS: IMAP $IMAP (STARTTLS), IMAPS $(port_of imaps)," \
	"POP3 $(port_of pop3) (STLS), POP3S $(port_of pop3s), LMTP $LMTP," \
	"HTTPS $(port_of https)${SMTP_PORTS:-}"
echo "demo: webmail and JMAP at https://localhost:$(port_of https)/," \
	"metrics at http://127.0.0.1:$(port_of metrics)/metrics"
echo "demo: config $RUN/loftd.conf, certificate $RUN/cert.pem (for localhost," \
	"issued by the demo CA $RUN/ca.pem: trust that in a client; connect to" \
	"localhost, not 127.0.0.1)"
echo "demo: deliver a first message:"
printf '%s\n' "  printf 'Subject: Hello\\n\\nA first message.\\n' | python3 -c 'import smtplib, sys; smtplib.LMTP(\"localhost\", $LMTP).sendmail(\"me@localhost\", [\"$USER\"], sys.stdin.read())'"
echo "demo: read it:"
printf '%s\n' "  python3 -c 'import imaplib, ssl; m = imaplib.IMAP4(\"localhost\", $IMAP); m.starttls(ssl.create_default_context(cafile=\"$RUN/cert.pem\")); m.login(\"$USER\", open(\"$RUN/demo-secret\").read().strip()); m.select(); print(m.fetch(\"1\", \"(BODY[HEADER.FIELDS (SUBJECT)])\"))'"
exec "$LOFTD" --config "$CONF"
