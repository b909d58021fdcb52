# duo — build, test, benchmark. Every target that builds first makes sure the system
# libraries are there (a fresh machine needs nothing done by hand).

SWIFT ?= swift
# The C kernels at -O3 in every build, tests included: SwiftPM builds C at -O0 in debug, and
# the package itself carries no compiler flags (a package with unsafe flags cannot be used as
# a dependency). The kernels choose their x86-64 level at run time (Sources/CKernels/dispatch.h).
KERNEL_FLAGS := -Xcc -O3
APT_PACKAGES := libopenblas-dev libpng-dev libssl-dev openmpi-bin libdnnl-dev

.PHONY: deps build test lint bench demo fuzz fuzz-deps package-check docs-check detectors clean

# Install the missing Debian packages; does nothing when they are all present.
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		export DEBIAN_FRONTEND=noninteractive; \
		$$SUDO apt-get update -qq && \
		{ $$SUDO apt-get install -y -qq $$missing || \
		  { $$SUDO apt-get install -y -qq --fix-broken && $$SUDO apt-get install -y -qq $$missing; }; }; \
	fi

build: deps
	$(SWIFT) build -c release $(KERNEL_FLAGS) --product duo

# The main job on the embedded model: SDEdit pairs, DUO and ESD adapters, Ring-A-Bell
# prompts, and the evaluation report (reports/stripes/demo/report.html).
CONCEPT ?= stripes
demo: build
	.build/release/duo synthesize --concept $(CONCEPT)
	.build/release/duo unlearn --concept $(CONCEPT) --method duo --out adapters/$(CONCEPT)/duo
	.build/release/duo unlearn --concept $(CONCEPT) --method esd --out adapters/$(CONCEPT)/esd
	.build/release/duo attack ring-a-bell --concept $(CONCEPT)
	.build/release/duo eval --concept $(CONCEPT) \
		--adapter adapters/$(CONCEPT)/duo/adapter.safetensors --label DUO \
		--adapter adapters/$(CONCEPT)/esd/unet.safetensors --label ESD \
		--attack-set ring-a-bell=attacks/$(CONCEPT)/ring-a-bell.txt \
		--prompts 24 --seeds 1 --keep-prompts 48 --out reports/$(CONCEPT)/demo

# The external detectors' Python (detectors/README.md): NudeNet 3.4.2 and what it imports,
# pinned in detectors/requirements.txt, in detectors/.venv. Made again only when that file
# changes; a Debian Python without venv support gets python3-venv first.
PYTHON ?= python3
detectors: detectors/.venv/installed

detectors/.venv/installed: detectors/requirements.txt
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || $(MAKE) --no-print-directory deps APT_PACKAGES=python3-venv
	$(PYTHON) -m venv detectors/.venv
	detectors/.venv/bin/python -m pip install --quiet --disable-pip-version-check -r detectors/requirements.txt
	touch $@

test: deps
	$(SWIFT) build --build-tests $(KERNEL_FLAGS)
	$(SWIFT) test --skip-build $(KERNEL_FLAGS)

# The core's figures; then, where the model venv exists (tools/make_model_fixtures.py),
# a full-size SD UNet (made once by tools/make_sd_unet.py), sampling, a training step,
# SDEdit pair synthesis and the embedded UNet's forward pass against diffusers.
bench: deps
	$(SWIFT) build -c release $(KERNEL_FLAGS) --product duo-bench
	.build/release/duo-bench
	.build/release/duo-bench evaluation Sources/World/Resources/model Sources/World/Resources/concepts/stripes.toml
	@if [ -x tools/.venv-models/bin/python ]; then \
		[ -d .build/sd-unet ] || tools/.venv-models/bin/python tools/make_sd_unet.py; \
		.build/release/duo-bench sd-unet .build/sd-unet tools/.venv-models/bin/python; \
		.build/release/duo-bench sampling Tests/DiffusionTests/Fixtures/models/pipeline \
			tools/.venv-models/bin/python; \
		.build/release/duo-bench train-vs-diffusers tools/.venv-models/bin/python; \
		.build/release/duo-bench synthesis Sources/World/Resources/model tools/.venv-models/bin/python; \
		.build/release/duo-bench unlearn Sources/World/Resources/model tools/.venv-models/bin/python; \
		.build/release/duo-bench unet-forward Sources/World/Resources/model/unet \
			tools/.venv-models/bin/python; \
	else \
		.build/release/duo-bench unet-forward Sources/World/Resources/model/unet; \
		.build/release/duo-bench synthesis Sources/World/Resources/model; \
		.build/release/duo-bench unlearn Sources/World/Resources/model; \
		echo "(model benchmarks skipped: they need tools/.venv-models, see tools/make_model_fixtures.py)"; \
	fi

# libFuzzer harnesses for the readers of untrusted files (Fuzz/, a package of its own so
# `make test` never builds them), each run FUZZ_SECONDS; the summary says, per harness,
# the inputs executed and whether it crashed (results: RELIABILITY.md).
FUZZ_SECONDS ?= 100
FUZZ_HARNESSES := safetensors json concept png tokenizer promptset
FUZZ_SWIFTFLAGS := -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library

# libFuzzer and AddressSanitizer ship with the Swift toolchain's clang runtime.
fuzz-deps: deps
	@runtime=$$(dirname "$$(dirname "$$(readlink -f "$$(command -v $(SWIFT))")")")/lib/clang; \
	ls $$runtime/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 || \
		{ echo "make fuzz: no libFuzzer in $$runtime (a Swift toolchain for Linux ships it)"; exit 1; }

fuzz: fuzz-deps
	@for h in $(FUZZ_HARNESSES); do \
		$(SWIFT) build --package-path Fuzz --scratch-path Fuzz/.build -c release \
			$(FUZZ_SWIFTFLAGS) --product fuzz-$$h || exit 1; \
	done
	Fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_HARNESSES)

# Every duo command the README and docs show, run as written (long: it trains and evaluates
# what the docs do). M and A (your SD folder and adapter) also run the README's own-model
# commands. The test suite parses the same commands on every run.
docs-check: build
	tools/docs_check.sh

# A scratch package outside the repository that depends on duo's library products through a
# git URL builds and runs (SwiftPM refuses dependencies whose manifests carry unsafe flags).
package-check: deps
	tools/package_check.sh

# Formatting as .swift-format says (4-space indent, 100 columns); swift-format ships with
# the Swift toolchain. `swift format --in-place --recursive Sources Tests Fuzz/Sources Plugins` applies it.
lint:
	$(SWIFT) format lint --recursive --strict Sources Tests Fuzz/Sources Plugins

clean:
	rm -rf .build Fuzz/.build
