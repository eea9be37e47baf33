# Thin wrapper around CMake. `make demo` and `make test` are the two set-up commands.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE ?= cmake

.PHONY: all release debug demo test deps fuzz bench format format-check clean docs

all: release

deps:
	@sh scripts/deps.sh

release:
	@$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@$(CMAKE) --build build -j $(JOBS)

debug:
	@$(CMAKE) -S . -B build-debug -DCMAKE_BUILD_TYPE=Debug -DSLUICE_WERROR=ON -DSLUICE_SANITIZE=ON >/dev/null
	@$(CMAKE) --build build-debug -j $(JOBS)

demo: deps release
	@sh scripts/demo.sh

test: deps debug
	@cd build-debug && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# libFuzzer targets with clang; run one with e.g. build-fuzz/fuzz_json -max_total_time=60
fuzz: deps
	@CC=clang $(CMAKE) -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSLUICE_FUZZ=ON -DSLUICE_SANITIZE=ON >/dev/null
	@$(CMAKE) --build build-fuzz -j $(JOBS)

bench: release
	@sh scripts/deps.sh --bench
	@bash bench/run.sh

docs: release
	@./build/sluice docs config > docs/configuration.md

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-debug build-fuzz
