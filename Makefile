# duo — build, test, benchmark. Every target that builds first makes sure the system
# libraries are there (a fresh machine needs nothing done by hand).

SWIFT ?= swift
APT_PACKAGES := libopenblas-dev libpng-dev

.PHONY: deps build test bench clean

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
	$(SWIFT) build -c release --product duo

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The core's figures; then, where the model venv exists (tools/make_model_fixtures.py),
# a full-size SD UNet (made once by tools/make_sd_unet.py), sampling, a training step and
# SDEdit pair synthesis against diffusers.
bench: deps
	$(SWIFT) build -c release --product duo-bench
	.build/release/duo-bench
	@if [ -x tools/.venv-models/bin/python ]; then \
		[ -d .build/sd-unet ] || tools/.venv-models/bin/python tools/make_sd_unet.py; \
		.build/release/duo-bench sd-unet .build/sd-unet tools/.venv-models/bin/python; \
		.build/release/duo-bench sampling Tests/DiffusionTests/Fixtures/models/pipeline \
			tools/.venv-models/bin/python; \
		.build/release/duo-bench train-vs-diffusers tools/.venv-models/bin/python; \
		.build/release/duo-bench synthesis Sources/World/Resources/model tools/.venv-models/bin/python; \
		.build/release/duo-bench unlearn Sources/World/Resources/model tools/.venv-models/bin/python; \
	else \
		.build/release/duo-bench synthesis Sources/World/Resources/model; \
		.build/release/duo-bench unlearn Sources/World/Resources/model; \
		echo "(model benchmarks skipped: they need tools/.venv-models, see tools/make_model_fixtures.py)"; \
	fi

clean:
	rm -rf .build
