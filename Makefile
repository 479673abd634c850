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
# systemd units and the group that may connect to the responder sockets
# (nginx and lighttpd run as www-data on Debian, nginx on Fedora).
UNITDIR     ?= $(PREFIX)/lib/systemd/system
WEBGROUP    ?= www-data
DEB_VERSION ?=
RPM_RELEASE ?= 1
PKG_REF     ?=

CC          ?= cc
PKG_CONFIG  ?= pkg-config
SANITIZE    ?=
OPT         ?= -O2 -g
CFLAGS      ?= $(OPT)
# Programs load only the libraries they use (less memory per ws socket).
LDFLAGS     ?= -Wl,--as-needed
-include config.mk

PKGS        := libpq json-c libjwt libcurl yaml-0.1 inih libcrypto nettle
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

UNIT_SED    = sed -e "s|@LIBEXECDIR@|$(LIBEXECDIR)|g" -e "s|@SBINDIR@|$(SBINDIR)|g" \
              -e "s|@SYSCONFDIR@|$(SYSCONFDIR)|g" -e "s|@WEBGROUP@|$(WEBGROUP)|g"

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
# the resident half of ws/terminal (rules below)
WS_PUMP     := ws/terminal-pump
WS_PUMP_OBJ := build/ws/terminal-pump.o build/ws/wsapp-light.o \
               build/lib/util.o build/lib/json.o build/lib/log.o \
               build/lib/validate.o
BIN_SRC     := $(sort $(wildcard bin/*.c))
BIN_BIN     := $(BIN_SRC:%.c=%)
TEST_SRC    := $(sort $(wildcard tests/unit/check_*.c))
TEST_BIN    := $(TEST_SRC:tests/unit/%.c=build/tests/%)
# ws/terminal links no libpq, OpenSSL or curl and the local driver only (it
# starts in a fraction of a millisecond); it hands sockets without an
# admission ticket to ws/terminal-full (ws/terminal.c says how)
WS_TERM     := ws/terminal ws/terminal-full
WS_LIGHT_OBJ := build/ws/terminal-light.o build/ws/driver-local.o \
               build/ws/wsapp-nodb.o build/lib/wsticket.o build/lib/keys.o \
               build/lib/driver_local.o build/lib/config.o build/lib/log.o \
               build/lib/util.o build/lib/json.o build/lib/validate.o
PROGS       := $(CGI_BIN) $(filter-out ws/terminal,$(WS_BIN)) $(BIN_BIN)

.PHONY: all check test run install clean deps valgrind help bench deb rpm pkgsrc

all: $(PROGS) $(WS_TERM) $(WS_PUMP)

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

# ws/terminal-pump: the resident half of ws/terminal (ws/terminal.c says
# how), linked with libc and json-c only: an idle socket maps no libpq,
# OpenSSL or curl.  Built from ws/terminal.c and lib/wsapp.c again.
JSONC_LIBS  ?= $(shell $(PKG_CONFIG) --libs json-c 2>/dev/null || echo -ljson-c)

build/ws/driver-local.o: lib/driver.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -DDP_DRIVER_LOCAL_ONLY -c -o $@ $<

LIGHT_LIBS  ?= $(shell $(PKG_CONFIG) --libs inih json-c nettle 2>/dev/null || echo -linih -ljson-c -lnettle)

build/ws/terminal-light.o: ws/terminal.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -DDP_TERMINAL_LIGHT -c -o $@ $<

build/ws/wsapp-nodb.o: lib/wsapp.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -DDP_WSAPP_NODB -c -o $@ $<

# Its three libraries linked in (libc stays shared): every socket execs it,
# and loading them took about 0.2 ms of each attach.  Only where all three
# static archives are installed (Debian's -dev packages have them;
# Fedora's have none): else, or with LIGHT_STATIC=no, linked as usual.
LIGHT_LIBDIRS ?= $(sort $(shell $(PKG_CONFIG) --variable=libdir inih json-c nettle 2>/dev/null))
LIGHT_STATIC ?= $(if $(and $(wildcard $(addsuffix /libinih.a,$(LIGHT_LIBDIRS))),$(wildcard $(addsuffix /libjson-c.a,$(LIGHT_LIBDIRS))),$(wildcard $(addsuffix /libnettle.a,$(LIGHT_LIBDIRS)))),yes,no)
LIGHT_LINK_yes = -Wl,-Bstatic $(LIGHT_LIBS) -Wl,-Bdynamic
LIGHT_LINK_no = $(LIGHT_LIBS)

ws/terminal: $(WS_LIGHT_OBJ)
	@test -n "$(Q)" && echo "  LD      $@" || true
	$(Q)$(CC) $(LDFLAGS) -o $@ $(WS_LIGHT_OBJ) $(LIGHT_LINK_$(LIGHT_STATIC))

ws/terminal-full: build/ws/terminal.o build/libdevpocket.a
	@test -n "$(Q)" && echo "  LD      $@" || true
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBS)

build/ws/terminal-pump.o: ws/terminal.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -DDP_TERMINAL_PUMP -c -o $@ $<

build/ws/wsapp-light.o: lib/wsapp.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -DDP_WSAPP_LIGHT -c -o $@ $<

$(WS_PUMP): $(WS_PUMP_OBJ)
	@test -n "$(Q)" && echo "  LD      $@" || true
	$(Q)$(CC) $(LDFLAGS) -o $@ $(WS_PUMP_OBJ) $(JSONC_LIBS)

build/tests/%: build/tests/unit/%.o build/libdevpocket.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(CHECK_LIBS)

build/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

bench/fcgi-trivial: bench/fcgi-trivial.c
	$(Q)$(CC) -std=c17 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE $(shell $(PKG_CONFIG) --cflags libpq) -o $@ $< $(FCGI_LIBS) $(shell $(PKG_CONFIG) --libs libpq)

deps:
	@sh packaging/install-deps.sh

# Unit tests (Check).  Each program prints Check's own summary line.
check: $(TEST_BIN) $(PROGS) $(WS_TERM)
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
	@sh bench/envs.sh

install: all
	install -d $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(LIBEXECDIR)/ws \
		$(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
		$(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(DATADIR)/templates/environments \
		$(DESTDIR)$(DATADIR)/templates/email $(DESTDIR)$(SYSCONFDIR)/devpocket/conf.d
	for p in $(CGI_BIN); do install -m 0755 $$p $(DESTDIR)$(LIBEXECDIR)/; done
	for p in $(WS_BIN) ws/terminal-full $(WS_PUMP); do install -m 0755 $$p $(DESTDIR)$(LIBEXECDIR)/ws/; done
	install -m 0755 bin/devpocketctl $(DESTDIR)$(BINDIR)/devpocketctl
	install -m 0755 bin/devpocket-worker $(DESTDIR)$(SBINDIR)/devpocket-worker
	install -m 0644 sql/*.sql $(DESTDIR)$(DATADIR)/sql/
	-install -m 0644 templates/environments/*.yaml $(DESTDIR)$(DATADIR)/templates/environments/
	-install -m 0644 templates/email/*.txt $(DESTDIR)$(DATADIR)/templates/email/
	install -m 0644 etc/devpocket.conf $(DESTDIR)$(SYSCONFDIR)/devpocket/devpocket.conf
	# packaging (issue 5): man pages, web-server sites, systemd units.
	install -d $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSCONFDIR)/nginx/sites-available \
		$(DESTDIR)$(SYSCONFDIR)/lighttpd/conf-available $(DESTDIR)$(UNITDIR)
	install -m 0644 docs/devpocket.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 docs/devpocketctl.8 docs/devpocket-worker.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 etc/conf.d/README $(DESTDIR)$(SYSCONFDIR)/devpocket/conf.d/README
	install -m 0644 etc/nginx/devpocket.conf $(DESTDIR)$(SYSCONFDIR)/nginx/sites-available/devpocket
	install -m 0644 etc/lighttpd/devpocket.conf $(DESTDIR)$(SYSCONFDIR)/lighttpd/conf-available/50-devpocket.conf
	for n in $(notdir $(CGI_BIN)); do for u in socket service; do \
		$(UNIT_SED) -e "s|@NAME@|$$n|g" etc/systemd/devpocket-responder.$$u.in \
		>$(DESTDIR)$(UNITDIR)/devpocket-$$n.$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/devpocket-$$n.$$u || exit 1; done; done
	for u in worker websocketd; do \
		$(UNIT_SED) etc/systemd/devpocket-$$u.service.in \
		>$(DESTDIR)$(UNITDIR)/devpocket-$$u.service && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/devpocket-$$u.service || exit 1; done

# Packages (issue 5).  Both build from a copy of the working tree under
# build/, so the checkout's own build is left alone.  DEB_VERSION
# (default: packaging/debian/changelog's) and RPM_RELEASE may be set.
PKG_SRC     := $(CURDIR)/build/pkgsrc/devpocket-$(VERSION)
pkgsrc:
	rm -rf build/pkgsrc && mkdir -p $(PKG_SRC)
	# The working tree as it is (what `make all` builds); PKG_REF=<commit>
	# packages that commit instead.
	if [ -n "$(PKG_REF)" ]; then \
		git archive --format=tar $(PKG_REF); \
	else \
		tar -cf - --exclude=./build --exclude=./var --exclude=./.git \
			--exclude=__pycache__ .; \
	fi | tar -xf - -C $(PKG_SRC)
	$(MAKE) -C $(PKG_SRC) clean >/dev/null

deb: pkgsrc
	cp -a $(PKG_SRC)/packaging/debian $(PKG_SRC)/debian
	sh $(PKG_SRC)/packaging/deb-version.sh $(PKG_SRC)/debian/changelog "$(DEB_VERSION)"
	cd $(PKG_SRC) && dpkg-buildpackage -us -uc -b $(DEB_FLAGS)
	rm -rf build/deb && mkdir -p build/deb
	mv build/pkgsrc/*.deb build/pkgsrc/*.buildinfo build/pkgsrc/*.changes build/deb/
	@ls build/deb/*.deb

rpm: pkgsrc
	rm -rf build/rpm && mkdir -p build/rpm/SOURCES build/rpm/SPECS
	tar -czf build/rpm/SOURCES/devpocket-$(VERSION).tar.gz -C build/pkgsrc devpocket-$(VERSION)
	sed -e "s|@VERSION@|$(VERSION)|g" -e "s|@RELEASE@|$(RPM_RELEASE)|g" \
		$(PKG_SRC)/packaging/rpm/devpocket.spec >build/rpm/SPECS/devpocket.spec
	rpmbuild --define "_topdir $(CURDIR)/build/rpm" $(RPM_FLAGS) \
		-bb build/rpm/SPECS/devpocket.spec
	@ls build/rpm/RPMS/*/*.rpm

clean:
	rm -rf build $(PROGS) $(WS_TERM) $(WS_PUMP) bench/fcgi-trivial

-include $(LIB_OBJ:.o=.d) $(PROGS:%=build/%.d) $(WS_PUMP_OBJ:.o=.d) build/ws/driver-local.d build/ws/terminal.d $(WS_LIGHT_OBJ:.o=.d) build/ws/wsapp-light.d $(TEST_SRC:%.c=build/%.d)
