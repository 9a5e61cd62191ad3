#!/bin/sh
# The body of `make deb`: builds the Debian package from a copy of the
# source tree (so the tree and its build/ stay as they are, and nothing
# is written beside the checkout) and leaves dist/loft_VERSION_ARCH.deb
# ($LOFT_DEB_OUT instead of dist/ when set).
# DEB_BUILD_OPTIONS passes through (nocheck skips the unit tests,
# parallel=N sets the jobs).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/loft-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

cd "$here"
mkdir -p "$work/loft"
# what git knows of (tracked and new, not ignored): no build trees
if git rev-parse --git-dir >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		(cd "$here" && xargs -0 cp --parents -t "$work/loft" 2>/dev/null) || true
	# files deleted in the work tree are listed but absent: cp skipped them
else
	tar --exclude='./build*' --exclude='./dist' --exclude='./run' -cf - . |
		(cd "$work/loft" && tar xf -)
fi
case " ${DEB_BUILD_OPTIONS:-} " in
*parallel=*) ;;
*) DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} parallel=$(nproc)" ;;
esac
export DEB_BUILD_OPTIONS
cd "$work/loft"
if ! dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1; then
	tail -40 "$work/build.log" >&2
	echo "deb: dpkg-buildpackage failed (log above)" >&2
	exit 1
fi
out=${LOFT_DEB_OUT:-$here/dist}
mkdir -p "$out"
for deb in "$work"/loft_*.deb; do
	cp "$deb" "$out/"
	echo "deb: $out/$(basename "$deb")"
done
