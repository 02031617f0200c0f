# qforge - GNU make build. `make help` lists the targets.
#
#   make                 library, tools (build/libqforge.a, build/bin/qforge-*)
#   make test            unit + CLI tests (tests/run.sh), ends "N passed, N failed"
#   make asan            the tests under ASan+UBSan, in build-asan/
#   make demo            convert/inspect/verify the bundled model in fixtures/
#   make check-golden    compare against ../shared/golden (llama.cpp's outputs)
#   make check-interop   our files read by independent tools (tests/interop, npm)
#   make fuzz            libFuzzer targets (clang), in build-fuzz/
#   make fuzz-smoke      every fuzz target for FUZZ_SECONDS (60) s, as CI runs them
#   make install         PREFIX=/usr/local DESTDIR= : tools, libqforge.a, headers, qforge.pc
#
# Knobs: WERROR=1 (warnings are errors), NATIVE=1 (-march=native; results may
# then differ between machines), OPT='-O2 -g', CC, CFLAGS/LDFLAGS (appended).

VERSION   := 0.1.0
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
LIBDIR    ?= $(PREFIX)/lib
INCDIR    ?= $(PREFIX)/include
PCDIR     ?= $(LIBDIR)/pkgconfig
BUILD     ?= build
CC        ?= cc
OPT       ?= -O2 -g
PKG_CONFIG ?= pkg-config

WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wmissing-declarations -Wpointer-arith -Wdouble-promotion -Wformat=2 \
            -Wundef -Wwrite-strings -Wvla -Wcast-align -Wold-style-definition \
            -Wno-unused-parameter
ifeq ($(WERROR),1)
WARNINGS += -Werror
endif
ifeq ($(NATIVE),1)
ARCHFLAGS := -march=native
endif

PKGS      := libzstd libcjson libcrypto libarchive
TEST_PKGS := cmocka

# ---------------------------------------------------------------------------
# Dependencies: found through pkg-config; installed when missing and root.
NODEPS_GOALS := clean distclean help uninstall
ifneq ($(filter-out $(NODEPS_GOALS),$(or $(MAKECMDGOALS),all)),)
DEPS_OK := $(shell $(PKG_CONFIG) --exists $(PKGS) $(TEST_PKGS) 2>/dev/null && echo yes)
ifneq ($(DEPS_OK),yes)
CAN_INSTALL := $(shell [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && echo yes)
ifeq ($(CAN_INSTALL),yes)
$(info qforge: some libraries are missing; running scripts/install-deps.sh)
DEPS_RC := $(shell sh scripts/install-deps.sh >&2; echo $$?)
ifneq ($(DEPS_RC),0)
$(error scripts/install-deps.sh failed (exit $(DEPS_RC)))
endif
else
$(error missing libraries; install them with: apt-get install $(shell sh scripts/install-deps.sh --list))
endif
endif
endif

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
TEST_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS   := $(shell $(PKG_CONFIG) --libs $(TEST_PKGS) 2>/dev/null)

# Our flags first, the user's CFLAGS last: `make CFLAGS=...` adds, never drops.
QF_CFLAGS := -std=c11 -D_GNU_SOURCE -I. $(WARNINGS) $(OPT) $(ARCHFLAGS) -pthread \
             -ffp-contract=off -MMD -MP $(PKG_CFLAGS) -DQF_VERSION='"$(VERSION)"'
ALL_CFLAGS = $(QF_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = -pthread $(LDFLAGS)
LIBS := $(PKG_LIBS) -lm

# ---------------------------------------------------------------------------
# Sources
LIB_SRC   := $(sort $(wildcard formats/*.c quantize/*.c convert/*.c verify/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/libqforge.a
TOOLS_COMMON_SRC := $(filter-out tools/qforge.c tools/qforge-%.c,$(wildcard tools/*.c))
TOOLS_COMMON_OBJ := $(TOOLS_COMMON_SRC:%.c=$(BUILD)/obj/%.o)
TOOL_SRC  := $(sort $(wildcard tools/qforge-*.c))
TOOLS     := $(TOOL_SRC:tools/%.c=$(BUILD)/bin/%) $(BUILD)/bin/qforge
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
TESTS     := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
UTIL_SRC  := $(sort $(wildcard tests/util_*.c))
UTILS     := $(UTIL_SRC:tests/%.c=$(BUILD)/tests/%)
HEADERS   := $(filter-out %_impl.h,$(sort $(wildcard formats/*.h quantize/*.h convert/*.h verify/*.h)))

.PHONY: all lib tools tests test asan demo check-golden check-interop fuzz fuzz-smoke bench install uninstall clean help
.SECONDARY:
all: $(LIB) $(TOOLS)
lib: $(LIB)
tools: $(TOOLS)
tests: $(TESTS) $(UTILS) $(TOOLS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/obj/tools/%.o $(TOOLS_COMMON_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $^ $(LIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) $(ALL_LDFLAGS) $< $(LIB) $(LIBS) $(TEST_LIBS) -o $@

# Small helper programs the golden and CLI checks use (no cmocka).
$(BUILD)/tests/util_%: tests/util_%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $< $(LIB) $(LIBS) -o $@

test: tests
	@QF_BUILD=$(BUILD) sh tests/run.sh

SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
asan:
	$(MAKE) BUILD=build-asan OPT='-O1 -g $(SAN)' LDFLAGS='$(SAN) $(LDFLAGS)' test

demo: all
	@sh scripts/demo.sh $(BUILD)

check-golden: all $(UTILS)
	@QF_BUILD=$(BUILD) sh tests/golden/run.sh

check-interop: all
	@QF_BUILD=$(BUILD) sh tests/interop/run.sh

# libFuzzer targets: build-fuzz/fuzz_<reader> (clang). The library is built
# once with coverage instrumentation, then linked into each target.
# make fuzz-smoke runs every target FUZZ_SECONDS (60) s, two at a time.
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -I. -O1 -g -ffp-contract=off -MMD -MP $(FUZZ_SAN) $(PKG_CFLAGS) \
               -DQF_VERSION='"$(VERSION)"' -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
FUZZ_OBJ := $(LIB_SRC:%.c=build-fuzz/obj/%.o)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)

build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

build-fuzz/libqforge.a: $(FUZZ_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c build-fuzz/libqforge.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $< build-fuzz/libqforge.a $(PKG_LIBS) -lm -o $@

fuzz: $(FUZZ_BIN)

fuzz-smoke: fuzz
	@FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) sh tests/fuzz/smoke.sh build-fuzz

bench: all
	@sh bench/run.sh $(BUILD)

# ---------------------------------------------------------------------------
# Install
$(BUILD)/qforge.pc: Makefile
	@mkdir -p $(dir $@)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCDIR)' '' \
	  'Name: qforge' 'Description: model weight conversion, quantization and verification' \
	  'Version: $(VERSION)' 'Requires: $(PKGS)' \
	  'Libs: -L$${libdir} -lqforge -lm -pthread' \
	  'Cflags: -I$${includedir}/qforge' > $@

install: all $(BUILD)/qforge.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PCDIR)
	install -m 755 $(TOOLS) $(DESTDIR)$(BINDIR)/
	install -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/
	install -m 644 $(BUILD)/qforge.pc $(DESTDIR)$(PCDIR)/
	for h in $(HEADERS); do \
	  install -d $(DESTDIR)$(INCDIR)/qforge/$$(dirname $$h) && \
	  install -m 644 $$h $(DESTDIR)$(INCDIR)/qforge/$$h || exit 1; done

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(TOOLS)))
	rm -f $(DESTDIR)$(LIBDIR)/libqforge.a $(DESTDIR)$(PCDIR)/qforge.pc
	rm -rf $(DESTDIR)$(INCDIR)/qforge

clean:
	rm -rf build build-asan build-fuzz

help:
	@sed -n '2,15p' Makefile | sed 's/^# \{0,1\}//'

-include $(LIB_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d) $(TOOLS_COMMON_OBJ:.o=.d) $(TOOL_SRC:tools/%.c=$(BUILD)/obj/tools/%.d)
