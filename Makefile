# DevPocket top-level Makefile.  `make help` lists the targets.
VERSION     ?= 0.1.0
PREFIX      ?= /usr
SYSCONFDIR  ?= /etc
LOCALSTATEDIR ?= /var
LIBEXECDIR  ?= $(PREFIX)/lib/devpocket
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
DATADIR     ?= $(PREFIX)/share/devpocket
MANDIR      ?= $(PREFIX)/share/man
DESTDIR     ?=

CC          ?= cc
PKG_CONFIG  ?= pkg-config
SANITIZE    ?=
OPT         ?= -O2 -g
CFLAGS      ?= $(OPT)
-include config.mk

PKGS        := libpq json-c libjwt libcurl yaml-0.1 inih libcrypto
PKG_CFLAGS  := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
FCGI_LIBS   ?= -lfcgi
SCRYPT_LIBS ?= -lscrypt
CHECK_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS  ?= $(shell $(PKG_CONFIG) --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)

WARN        := -Wall -Wextra -Werror -Wno-unused-parameter
DEFS        := -D_GNU_SOURCE -DDP_VERSION='"$(VERSION)"' \
               -DDP_SYSCONFDIR='"$(SYSCONFDIR)"' -DDP_DATADIR='"$(DATADIR)"'
ALL_CFLAGS  := -std=c17 $(WARN) $(DEFS) -iquote lib $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
ifneq ($(SANITIZE),)
ALL_CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
LDFLAGS     += -fsanitize=$(SANITIZE)
endif
LIBS        := build/libdevpocket.a $(FCGI_LIBS) $(SCRYPT_LIBS) $(PKG_LIBS) -lm

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRC     := $(sort $(wildcard lib/*.c))
LIB_OBJ     := $(LIB_SRC:%.c=build/%.o)
CGI_SRC     := $(sort $(wildcard cgi-bin/*.c))
CGI_BIN     := $(CGI_SRC:%.c=%)
WS_SRC      := $(sort $(wildcard ws/*.c))
WS_BIN      := $(WS_SRC:%.c=%)
BIN_SRC     := $(sort $(wildcard bin/*.c))
BIN_BIN     := $(BIN_SRC:%.c=%)
TEST_SRC    := $(sort $(wildcard tests/unit/check_*.c))
TEST_BIN    := $(TEST_SRC:tests/unit/%.c=build/tests/%)
PROGS       := $(CGI_BIN) $(WS_BIN) $(BIN_BIN)

.PHONY: all check test run install clean deps valgrind help bench deb rpm

all: $(PROGS)

help:
	@echo "all check test run install clean valgrind bench deb rpm"

build/%.o: %.c
	@mkdir -p $(dir $@)
	@test -n "$(Q)" && echo "  CC      $<" || true
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/libdevpocket.a: $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(PROGS): %: build/%.o build/libdevpocket.a
	@test -n "$(Q)" && echo "  LD      $@" || true
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBS)

build/tests/%: build/tests/unit/%.o build/libdevpocket.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(CHECK_LIBS)

build/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

bench/fcgi-trivial: bench/fcgi-trivial.c
	$(Q)$(CC) -std=c17 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $< $(FCGI_LIBS)

deps:
	@sh packaging/install-deps.sh

# Unit tests (Check).  Each program prints Check's own summary line.
check: $(TEST_BIN) $(PROGS)
	@sh tests/run-unit.sh $(TEST_BIN)

valgrind: $(TEST_BIN)
	@VALGRIND=1 sh tests/run-unit.sh $(TEST_BIN)

# Everything: dependencies, unit tests, integration tests, one summary line.
test: deps
	@sh tests/run-all.sh

run: deps all
	@sh bin/devpocket-stack run

bench: deps all
	@sh bench/http.sh

install: all
	install -d $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
		$(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(DATADIR)/templates/environments \
		$(DESTDIR)$(DATADIR)/templates/email $(DESTDIR)$(SYSCONFDIR)/devpocket/conf.d
	for p in $(CGI_BIN) $(WS_BIN); do install -m 0755 $$p $(DESTDIR)$(LIBEXECDIR)/; done
	install -m 0755 bin/devpocketctl $(DESTDIR)$(BINDIR)/devpocketctl
	install -m 0755 bin/devpocket-worker $(DESTDIR)$(SBINDIR)/devpocket-worker
	install -m 0644 sql/*.sql $(DESTDIR)$(DATADIR)/sql/
	-install -m 0644 templates/environments/*.yaml $(DESTDIR)$(DATADIR)/templates/environments/
	-install -m 0644 templates/email/*.txt $(DESTDIR)$(DATADIR)/templates/email/
	install -m 0644 etc/devpocket.conf $(DESTDIR)$(SYSCONFDIR)/devpocket/devpocket.conf

clean:
	rm -rf build $(PROGS) bench/fcgi-trivial

-include $(LIB_OBJ:.o=.d) $(PROGS:%=build/%.d) $(TEST_SRC:%.c=build/%.d)
