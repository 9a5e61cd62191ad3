# Loft: the two commands that matter are `make run` and `make test`.
# Everything builds with CMake into build/ (release), build-asan/
# (ASan+UBSan) and build-fuzz/ (clang, libFuzzer).

JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build asan fuzz fuzz-run test test-unit run bench clean npm

all: build

deps:
	@sh scripts/deps.sh test

build:
	@sh scripts/deps.sh build
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLOFT_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build -j $(JOBS)

asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLOFT_WERROR=ON -DLOFT_SANITIZE=ON >/dev/null
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
	ctest --test-dir build --output-on-failure -j 2
	ctest --test-dir build-asan --output-on-failure -j 2 -LE interop
	$(MAKE) --no-print-directory fuzz-run

test-unit: build
	ctest --test-dir build --output-on-failure -L unit

run: build
	sh scripts/demo.sh

bench: deps build
	sh bench/run.sh $(if $(QUICK),--quick,)

clean:
	rm -rf build build-asan build-fuzz
