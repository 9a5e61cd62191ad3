#!/bin/sh
# npm ci in web/ when the lockfile is newer than what is installed; one at
# a time (build/ and build-asan/ may build at once and share node_modules).
set -eu
dir=$1
stamp="$dir/node_modules/.loft-ci-stamp"
cd "$dir"
run() {
	if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
		npm ci --no-audit --no-fund --loglevel=error >/dev/null
		touch "$stamp"
	fi
}
if command -v flock >/dev/null 2>&1; then
	exec 9>"$dir/.npm-ci.lock"
	flock 9
fi
run
