# rethink: M2M runtime for Linux devices.
#
#   make                 build everything into $(BUILD)/
#   make check           run every test suite; ends with "N passed, N failed"
#   make demo            run the demo scenario
#   make SANITIZE=1      build with ASan+UBSan (into build-asan/)
#   make install DESTDIR=... PREFIX=...
#   make deb             Debian packages into $(BUILD)/deb, checked by lintian
#
# User CFLAGS/LDFLAGS/CPPFLAGS are appended to ours, never replace them.

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD ?= build-asan
else
BUILD ?= build
endif

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBEXECDIR ?= $(PREFIX)/libexec
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
SYSCONFDIR ?= /etc
UNITDIR ?= /lib/systemd/system
CATALOGDIR ?= /usr/lib/systemd/catalog
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
POLKITRULESDIR ?= /usr/share/polkit-1/rules.d

CC ?= cc
CLANG ?= clang
BPFTOOL ?= bpftool
INSTALL ?= install

# Every goal but the ones that need nothing makes sure the dependencies are
# there first, so a fresh machine needs nothing by hand.
NODEPS_GOALS := clean help
ifeq ($(filter-out $(NODEPS_GOALS),$(or $(MAKECMDGOALS),all)),)
else ifneq ($(SKIP_DEPS),1)
DEPS_RC := $(shell scripts/install-deps >&2; echo $$?)
ifneq ($(DEPS_RC),0)
$(error scripts/install-deps failed, see above)
endif
endif

PKGS := libsystemd libnghttp2 openssl jansson libjwt sqlite3 libbpf libnl-3.0 libnl-route-3.0
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CUNIT_LIBS := $(shell pkg-config --libs cunit 2>/dev/null)

MULTIARCH := $(shell $(CC) -dumpmachine 2>/dev/null)
UNAME_M := $(shell uname -m)
BPF_ARCH := $(patsubst x86_64,x86,$(patsubst aarch64,arm64,$(UNAME_M)))

WARNINGS := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wformat=2 \
	-Wmissing-prototypes -Wstrict-prototypes -Wvla -Wdate-time
SAN_FLAGS :=
ifeq ($(SANITIZE),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

BASE_CPPFLAGS := -D_GNU_SOURCE -Ilib -I$(BUILD) -I$(BUILD)/bpf -Ibpf -Idaemon -Ictl -Inetlink -Iservices -Ihyperties/lib
BASE_CFLAGS := -std=gnu11 -O2 -g -fPIC $(WARNINGS) $(SAN_FLAGS)
ALL_CPPFLAGS = $(BASE_CPPFLAGS) $(PKG_CFLAGS) $(CPPFLAGS)
ALL_CFLAGS = $(BASE_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) -Wl,--as-needed $(LDFLAGS)

# --- modules ---------------------------------------------------------------
# Each folder is a static library of its modules; a folder's main.c, if any,
# is its program. Tests link against all of them.

LIB_SRCS := $(wildcard lib/*.c)
NETLINK_SRCS := $(wildcard netlink/*.c)
BPF_PROGS := $(wildcard bpf/*.bpf.c)
BPF_SRCS := $(filter-out %.bpf.c,$(wildcard bpf/*.c))
AGENT_SRCS := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
DOMAIN_SRCS := $(filter-out services/main.c,$(wildcard services/*.c))
CTL_SRCS := $(filter-out ctl/main.c,$(wildcard ctl/*.c))
HYPERTY_SRCS := $(wildcard hyperties/lib/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBRETHINK := $(BUILD)/librethink.a
LIBNETLINK := $(BUILD)/libnetmon.a
LIBQOSBPF := $(BUILD)/libqosbpf.a
LIBAGENT := $(BUILD)/libagent.a
LIBDOMAIN := $(BUILD)/libdomain.a
LIBCTL := $(BUILD)/libctl.a
LIBHYPERTY := $(BUILD)/libhyperty.a
ARCHIVES := $(LIBAGENT) $(LIBDOMAIN) $(LIBCTL) $(LIBHYPERTY) $(LIBNETLINK) $(LIBQOSBPF) $(LIBRETHINK)

BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_PROGS))
BPF_SKELS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.skel.h,$(BPF_PROGS))

PROGRAMS :=
ifneq ($(wildcard daemon/main.c),)
PROGRAMS += $(BUILD)/rethink-agent
endif
ifneq ($(wildcard services/main.c),)
PROGRAMS += $(BUILD)/rethink-domain
endif
ifneq ($(wildcard ctl/main.c),)
PROGRAMS += $(BUILD)/rethinkctl
endif
# Extra programs: each protostubs/*.c, hyperties/*.c and tests/helpers/*.c is
# a program of its own.
STANDALONE_SRCS := $(wildcard protostubs/*.c hyperties/*.c tests/helpers/*.c)
STANDALONE_PROGS := $(patsubst %.c,$(BUILD)/%,$(STANDALONE_SRCS))

UNIT_SRCS := $(wildcard tests/unit/test-*.c)
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))

FUZZ_SRCS := $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

.PHONY: all check demo demo-qos install clean help fuzz bench deps deb programs examples
.DEFAULT_GOAL := all

all: $(PROGRAMS) $(STANDALONE_PROGS) $(UNIT_TESTS) $(BPF_OBJS)

# The daemons and rethinkctl: what install installs.
programs: $(PROGRAMS)

deps:
	@:

help:
	@sed -n '1,/^$$/p' Makefile

# --- compile ------------------------------------------------------------------

ALL_OBJS := $(call obj,$(LIB_SRCS) $(NETLINK_SRCS) $(BPF_SRCS) $(AGENT_SRCS) $(DOMAIN_SRCS) \
	$(CTL_SRCS) $(HYPERTY_SRCS) $(wildcard daemon/main.c services/main.c ctl/main.c) \
	$(STANDALONE_SRCS) $(UNIT_SRCS))

# The skeletons are generated headers: anything may include them, so they
# exist before the first compile; -MMD tracks the rest.
$(BUILD)/obj/%.o: %.c | $(BPF_SKELS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

-include $(ALL_OBJS:.o=.d)

define archive
$(1): $(call obj,$(2))
	@mkdir -p $$(@D)
	rm -f $$@
	$$(if $$^,$$(AR) rcs $$@ $$^,$$(AR) rcs $$@)
endef
$(eval $(call archive,$(LIBRETHINK),$(LIB_SRCS)))
$(eval $(call archive,$(LIBNETLINK),$(NETLINK_SRCS)))
$(eval $(call archive,$(LIBQOSBPF),$(BPF_SRCS)))
$(eval $(call archive,$(LIBAGENT),$(AGENT_SRCS)))
$(eval $(call archive,$(LIBDOMAIN),$(DOMAIN_SRCS)))
$(eval $(call archive,$(LIBCTL),$(CTL_SRCS)))
$(eval $(call archive,$(LIBHYPERTY),$(HYPERTY_SRCS)))

LINK_ARCHIVES := -Wl,--start-group $(ARCHIVES) -Wl,--end-group

$(BUILD)/rethink-agent: $(call obj,daemon/main.c) $(ARCHIVES)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LINK_ARCHIVES) $(PKG_LIBS) -lm

$(BUILD)/rethink-domain: $(call obj,services/main.c) $(ARCHIVES)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LINK_ARCHIVES) $(PKG_LIBS) -lm

$(BUILD)/rethinkctl: $(call obj,ctl/main.c) $(ARCHIVES)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LINK_ARCHIVES) $(PKG_LIBS) -lm

$(STANDALONE_PROGS): $(BUILD)/%: $(BUILD)/obj/%.o $(ARCHIVES)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LINK_ARCHIVES) $(PKG_LIBS) -lm

# bench/msg-fanout's MQTT load generator speaks MQTT through libmosquitto.
$(BUILD)/tests/helpers/msg-mqtt-load: PKG_LIBS += -lmosquitto

$(UNIT_TESTS): $(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(ARCHIVES)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LINK_ARCHIVES) $(PKG_LIBS) $(CUNIT_LIBS) -lm

# --- eBPF -----------------------------------------------------------------------
# UAPI headers only (no vmlinux.h), so the objects do not depend on the build
# host's kernel; the multiarch dir supplies asm/ headers for -target bpf.

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h)
	@mkdir -p $(@D)
	$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -Ibpf \
		-idirafter /usr/include/$(MULTIARCH) -Wall -Werror -c $< -o $@

$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

# --- fuzzing --------------------------------------------------------------------
# libFuzzer needs clang; the library is rebuilt with clang and the fuzzer's
# instrumentation into its own tree.

FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
FUZZ_LIB_OBJS := $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(LIB_SRCS))

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CLANG) -std=gnu11 $(BASE_CPPFLAGS) $(PKG_CFLAGS) $(FUZZ_FLAGS) -Wall -Werror -Wno-unused-parameter -c $< -o $@

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_OBJS)
	@mkdir -p $(@D)
	$(CLANG) -std=gnu11 $(BASE_CPPFLAGS) $(PKG_CFLAGS) -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-omit-frame-pointer -o $@ $< $(FUZZ_LIB_OBJS) $(PKG_LIBS) -lm

fuzz: $(FUZZ_TARGETS)

# Generated headers and objects made by chained rules: make would delete
# them as intermediates after each run and rebuild them the next time.
.SECONDARY: $(BPF_OBJS) $(BPF_SKELS) $(FUZZ_LIB_OBJS)

# --- tests, demo, bench ----------------------------------------------------------

check: all fuzz
	BUILD=$(abspath $(BUILD)) tests/run-all

demo: all
	BUILD=$(abspath $(BUILD)) scripts/demo

demo-qos: all
	BUILD=$(abspath $(BUILD)) scripts/demo-qos

bench: all
	BUILD=$(abspath $(BUILD)) bench/run-all

# The example hyperties as packages and descriptors for the Catalogue
# (docs/libhyperty.md), into $(BUILD)/examples.
examples: $(BUILD)/hyperties/context-producer $(BUILD)/hyperties/context-consumer
	scripts/make-examples --build=$(abspath $(BUILD)) --out=$(abspath $(BUILD))/examples

# Debian packages from a clean copy of the tree, checked by lintian; into
# $(BUILD)/deb. See packaging/build-deb.
deb:
	packaging/build-deb $(abspath $(BUILD))/deb

# --- install ----------------------------------------------------------------------
# Never strips: debug symbols are the packager's business (dh_strip).

install: programs
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR)
	$(if $(wildcard $(BUILD)/rethinkctl),$(INSTALL) -m 0755 $(BUILD)/rethinkctl $(DESTDIR)$(BINDIR)/)
	$(if $(wildcard $(BUILD)/rethink-agent),$(INSTALL) -m 0755 $(BUILD)/rethink-agent $(DESTDIR)$(SBINDIR)/)
	$(if $(wildcard $(BUILD)/rethink-domain),$(INSTALL) -m 0755 $(BUILD)/rethink-domain $(DESTDIR)$(SBINDIR)/)
	$(if $(wildcard units/*.service),$(INSTALL) -d $(DESTDIR)$(UNITDIR) && $(INSTALL) -m 0644 units/*.service $(DESTDIR)$(UNITDIR)/)
	$(if $(wildcard units/*.catalog),$(INSTALL) -d $(DESTDIR)$(CATALOGDIR) && $(INSTALL) -m 0644 units/*.catalog $(DESTDIR)$(CATALOGDIR)/)
	$(if $(wildcard units/sysusers.d/*.conf),$(INSTALL) -d $(DESTDIR)$(SYSUSERSDIR) && $(INSTALL) -m 0644 units/sysusers.d/*.conf $(DESTDIR)$(SYSUSERSDIR)/)
	$(if $(wildcard units/tmpfiles.d/*.conf),$(INSTALL) -d $(DESTDIR)$(TMPFILESDIR) && $(INSTALL) -m 0644 units/tmpfiles.d/*.conf $(DESTDIR)$(TMPFILESDIR)/)
	$(if $(wildcard units/conf/*.conf),$(INSTALL) -d $(DESTDIR)$(SYSCONFDIR)/rethink && $(INSTALL) -m 0644 units/conf/*.conf $(DESTDIR)$(SYSCONFDIR)/rethink/)
	$(if $(wildcard units/polkit/*.rules),$(INSTALL) -d $(DESTDIR)$(POLKITRULESDIR) && $(INSTALL) -m 0644 units/polkit/*.rules $(DESTDIR)$(POLKITRULESDIR)/)

clean:
	rm -rf build build-asan
