#!/bin/sh
# The body of `make run`: a demo Loft on 127.0.0.1 with everything under
# ./run/ (config, data, a self-signed certificate for localhost, the demo
# password), created on the first run and reused after. Prints one line
# with the demo account, then runs loftd in the foreground (Ctrl-C stops).
#
#   IMAP 1143  IMAPS 1993  POP3 1110  POP3S 1995  LMTP 2424
#   HTTPS 8443 (webmail, JMAP, client set-up)  metrics 9180
set -eu

BUILD=${LOFT_BUILD:-build}
RUN=${LOFT_RUN:-run}
LOFTD=$BUILD/loftd
LOFTCTL=$BUILD/loftctl
CONF=$RUN/loftd.conf
USER=demo@example.test

for bin in "$LOFTD" "$LOFTCTL"; do
	if [ ! -x "$bin" ]; then
		echo "demo: $bin is missing; run 'make build' first" >&2
		exit 1
	fi
done

mkdir -p "$RUN"
chmod 700 "$RUN"
RUN_ABS=$(cd "$RUN" && pwd)

if [ ! -s "$RUN/cert.pem" ] || [ ! -s "$RUN/key.pem" ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
		-subj /CN=localhost \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$RUN/key.pem" -out "$RUN/cert.pem" >/dev/null 2>&1
	chmod 600 "$RUN/key.pem"
fi

if [ ! -s "$CONF" ]; then
	cat > "$CONF" <<CONF
# Loft demo configuration (created by scripts/demo.sh; see docs/config.md).
data_dir = $RUN_ABS/data
hostname = localhost
log_level = info

[tls]
cert = $RUN_ABS/cert.pem
key = $RUN_ABS/key.pem

[imap]
listen = 127.0.0.1:1143

[imaps]
listen = 127.0.0.1:1993

[pop3]
listen = 127.0.0.1:1110

[pop3s]
listen = 127.0.0.1:1995

[lmtp]
listen = 127.0.0.1:2424
CONF
fi
# HTTPS (webmail, JMAP, autoconfig) and the admin metrics listener; a
# run/ made before they existed gets them added.
if ! grep -q '^\[https\]' "$CONF"; then
	cat >> "$CONF" <<CONF

[https]
listen = 127.0.0.1:8443

[metrics]
listen = 127.0.0.1:9180
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

echo "demo: $USER password: $SECRET"
echo "demo: webmail and JMAP at https://localhost:8443/ (self-signed" \
	"certificate), metrics at http://127.0.0.1:9180/metrics"
exec "$LOFTD" --config "$CONF"
