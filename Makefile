# Loft: the two commands that matter are `make run` and `make test`.
# Everything builds with CMake into build/ (release), build-asan/
# (ASan+UBSan) and build-fuzz/ (clang, libFuzzer).

JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build asan fuzz fuzz-run test test-unit test-tls run bench bench-jmap clean npm \
	install deb

# make install [PREFIX=/usr/local] [DESTDIR=...]: loftd (sbin), loftctl
# (bin), loft.service (PREFIX/lib/systemd/system), docs and the example
# configuration (share/doc/loft), the webmail's assets when built.
PREFIX ?= /usr/local

all: build

deps:
	@sh scripts/deps.sh test

build:
	@sh scripts/deps.sh build
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLOFT_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build -j $(JOBS)

asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLOFT_WERROR=ON -DLOFT_SANITIZE=ON -DLOFT_TEST_COMMANDS=ON >/dev/null
	cmake --build build-asan -j $(JOBS)

fuzz:
	@sh scripts/deps.sh build
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOFT_FUZZ=ON >/dev/null
	cmake --build build-fuzz -j $(JOBS)

# A short run of every fuzz target (60 s in all), as part of `make test`.
fuzz-run: fuzz
	sh tests/fuzz/run.sh build-fuzz 60

npm:
	@if [ -f tests/interop/package-lock.json ]; then \
		cd tests/interop && npm ci --no-audit --no-fund --loglevel=error >/dev/null; fi

# Release build: every test. ASan+UBSan build: everything but the real-client
# interop tests (they ran once already). Then a short fuzz run.
test: deps build asan npm
	ctest --test-dir build --output-on-failure -j 2 -LE scaleout
	ctest --test-dir build-asan --output-on-failure -j 2 -LE 'interop|scaleout'
	$(MAKE) --no-print-directory fuzz-run

# Scale-out at full size (issue 18, docs/scale-out.md): 20 rounds of
# kill -9 of the PostgreSQL primary and promotion of its synchronous
# standby (make test runs 3), the S3 tests against a private Ceph
# radosgw, and the failure tests of tests/scaleout/ (label scaleout);
# import killed -9 and resumed, and backup under load then restore (also
# killed), on the postgres backend (issue 17; about 3 minutes; make test
# runs them on the embedded one); an IMAP import of 10,000 folders named
# in every script (make test: 1,000). .ci/run runs it after make test.
PG_SYSTEM_ENV = LOFT_TEST_BACKEND=postgres LOFTD=$(CURDIR)/build/loftd \
	LOFTCTL=$(CURDIR)/build/loftctl LOFT_SRC=$(CURDIR) \
	LOFT_BUILD=$(CURDIR)/build PYTHONPATH=$(CURDIR)/tests/lib \
	PYTHONDONTWRITEBYTECODE=1
test-scaleout: build
	@sh scripts/deps.sh scaleout
	LOFT_FAILOVER_ROUNDS=20 ctest --test-dir build --output-on-failure -j 2 \
		-R '^(system/test_failover|scaleout/.*)$$'
	$(PG_SYSTEM_ENV) python3 tests/system/test_migrate_kill.py
	$(PG_SYSTEM_ENV) python3 tests/system/test_migrate_backup.py
	LOFT_FOLDERS=10000 ctest --test-dir build --output-on-failure \
		-R '^system/test_migrate_imap_folders$$'

# testssl.sh on the demo's IMAPS and STARTTLS ports (several minutes:
# not in `make test`).
test-tls: deps build
	python3 tests/tls/testssl.py

test-unit: build
	ctest --test-dir build --output-on-failure -L unit

# The demo: PORT_OFFSET=N (a multiple of 1000) moves every port by N.
run: build
	LOFT_PORT_OFFSET=$(PORT_OFFSET) sh scripts/demo.sh

install: build
	cmake -S . -B build -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build build -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install build

# dist/loft_VERSION_ARCH.deb (debhelper; DEB_BUILD_OPTIONS=nocheck skips
# the unit tests).
deb:
	@sh scripts/deps.sh deb
	sh scripts/deb.sh

bench: deps build
	sh bench/run.sh $(if $(QUICK),--quick,)

# Loft's JMAP beside Debian 12's Cyrus (bench/jmap.py; about an hour).
bench-jmap: build
	@sh scripts/deps.sh bench
	LOFT_BUILD=$(CURDIR)/build python3 bench/jmap.py $(if $(QUICK),--quick,)

clean:
	rm -rf build build-asan build-fuzz
