"""bin/devpocketctl against the running stack: migrate, users, doctor, config."""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time

from harness import (CONF, PG_SOCK, ROOT, _psql, bearer, check, ctl, eq,
                     expect, fail, http, login, sql, unique)

CTL = os.path.join(ROOT, "bin", "devpocketctl")
PW = "Passw0rd-ctl"


def raw_ctl(*args, conf=None, input=None, env_extra=None):
    """devpocketctl without the harness's --config (for bad configs)."""
    env = dict(os.environ)
    env["DEVPOCKET_WEB_DATA_DIR"] = ROOT
    env.pop("DEVPOCKET_CONF", None)
    env.update(env_extra or {})
    cmd = [CTL] + (["--config", conf] if conf else []) + list(args)
    return subprocess.run(cmd, input=input, capture_output=True, text=True,
                          env=env, timeout=60)


def create(username=None, email=None, password=PW, *extra, check_rc=True):
    username = username or unique("c")
    email = email or username.lower() + "@example.com"
    p = ctl("user", "create", "--username", username, "--email", email,
            "--password", password, *extra, check=check_rc)
    return username, email, p


def me(token):
    return http("GET", "/api/v1/auth/me", headers=bearer(token))


def user_row(username):
    """The `user list` line of username as a list of its six fields."""
    out = ctl("user", "list").stdout
    for line in out.splitlines():
        f = line.split("\t")
        check(len(f) == 6, "user list line has %d fields: %r" % (len(f), line))
        if f[1].lower() == username.lower():
            return f
    return None


def test_ctl_migrate_is_idempotent():
    # The stack migrated at start; every later run has nothing to do.
    for _ in range(2):
        p = ctl("migrate")
        eq(p.stdout.strip(), "database is up to date", "migrate output")


def test_ctl_migrate_failure_rolls_back():
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "sql"))
        for n in sorted(os.listdir(os.path.join(ROOT, "sql"))):
            if re.match(r"^\d{3}\d*_.+\.sql$", n):
                with open(os.path.join(ROOT, "sql", n), "rb") as f:
                    data = f.read()
                with open(os.path.join(d, "sql", n), "wb") as f:
                    f.write(data)
        t = "ctl_probe_" + unique("t").lower()
        with open(os.path.join(d, "sql", "900_probe_ok.sql"), "w") as f:
            f.write("CREATE TABLE %s (a integer);\n" % t)
        with open(os.path.join(d, "sql", "901_probe_bad.sql"), "w") as f:
            f.write("SELECT no_such_column FROM %s;\n" % t)
        p = raw_ctl("migrate", conf=CONF,
                    env_extra={"DEVPOCKET_WEB_DATA_DIR": d})
        eq(p.returncode, 1, "exit of a failing migration")
        check("901_probe_bad.sql" in p.stderr, p.stderr)
        check("no_such_column" in p.stderr, p.stderr)
        check("applied" not in p.stdout, p.stdout)
        # 900 ran in the same transaction: nothing of it is left.
        os.unlink(os.path.join(d, "sql", "901_probe_bad.sql"))
        p = raw_ctl("doctor", conf=CONF,
                    env_extra={"DEVPOCKET_WEB_DATA_DIR": d})
        check(re.search(r"^FAIL schema: 1 migration\(s\) pending: "
                        r"900_probe_ok", p.stdout, re.M), p.stdout)
    eq(ctl("migrate").stdout.strip(), "database is up to date", "migrate")


def test_ctl_migrations_never_edited():
    """devpocketctl migrate applies each file of sql/ once per database, so
    a migration edited after it shipped never reaches the databases that
    already ran it.  tests/migrations.sha256 holds the hash of every
    migration as applied: a change to the schema is a new file, whose
    line is added there."""
    with open(os.path.join(ROOT, "tests", "migrations.sha256")) as f:
        want = dict(reversed(line.split()) for line in f if line.strip())
    files = sorted(n for n in os.listdir(os.path.join(ROOT, "sql"))
                   if n.endswith(".sql"))
    eq(files, sorted(want), "the migrations listed in tests/migrations.sha256")
    for n in files:
        with open(os.path.join(ROOT, "sql", n), "rb") as f:
            eq(hashlib.sha256(f.read()).hexdigest(), want[n],
               "sha256 of sql/%s (edited after it shipped?)" % n)


def test_ctl_migrate_upgrades_an_older_database():
    """A database migrated by an earlier build (here up to 005, before
    devpocket_ws_drop existed) migrates to the current schema, and the
    slot take works there."""
    db = "ctl_up_" + unique("d").lower()
    sock = PG_SOCK
    su = ["runuser", "-u", "postgres", "--", _psql(), "-X", "-q", "-At",
          "-v", "ON_ERROR_STOP=1", "-h", sock, "-d", "postgres", "-c"]
    subprocess.run(su + ["CREATE DATABASE %s OWNER devpocket" % db],
                   check=True, capture_output=True)
    url = "host=%s dbname=%s user=devpocket" % (sock, db)
    try:
        with tempfile.TemporaryDirectory() as d:
            os.mkdir(os.path.join(d, "sql"))
            for n in sorted(os.listdir(os.path.join(ROOT, "sql"))):
                if n.endswith(".sql") and n < "006":
                    shutil.copy(os.path.join(ROOT, "sql", n),
                                os.path.join(d, "sql", n))
            env = {"DEVPOCKET_WEB_DATA_DIR": d, "DEVPOCKET_DATABASE_URL": url}
            p = raw_ctl("migrate", conf=CONF, env_extra=env)
            eq(p.returncode, 0, "migrate to 005: %s" % p.stderr)
        env = {"DEVPOCKET_DATABASE_URL": url}
        p = raw_ctl("migrate", conf=CONF, env_extra=env)
        eq(p.returncode, 0, "migrate to the current schema: %s" % p.stderr)
        check("006_ws_drop" in p.stdout, p.stdout)
        q = ["runuser", "-u", "postgres", "--", _psql(), "-X", "-q", "-At",
             "-v", "ON_ERROR_STOP=1", "-h", sock, "-d", db, "-c"]
        subprocess.run(q + ["INSERT INTO users (id, username, email, "
                            "password_hash) VALUES ('%s', 'up', "
                            "'up@example.com', 'x')" % ("a" * 24)],
                       check=True, capture_output=True)
        # A dead row listed: the take calls devpocket_ws_drop.
        p = subprocess.run(q + ["SELECT devpocket_ws_slot('%s', '%s', "
                                "'terminal', NULL, 1, 'h', 10, '{%s}', NULL, "
                                "NULL)" % ("b" * 24, "a" * 24, "c" * 24)],
                           capture_output=True, text=True)
        eq((p.returncode, p.stdout.strip()), (0, "t"),
           "a slot taken: %s" % p.stderr)
    finally:
        subprocess.run(su + ["DROP DATABASE IF EXISTS %s" % db],
                       capture_output=True)


def test_ctl_user_create_and_login():
    username = unique("c")
    email = "Mixed." + username + "@Example.COM"
    p = ctl("user", "create", "--username", username, "--email", email,
            "--password", PW, "--plan", "pro", "--verified",
            "--full-name", "Grace Hopper")
    uid = p.stdout.strip()
    check(re.match(r"^[0-9a-f]{24}$", uid), "id %r" % uid)
    r = expect(login(email.upper(), PW), 200, "login by email")
    u = r.json["user"]
    eq(u["id"], uid, "id")
    eq(u["email"], email.lower(), "email is lowercased")
    eq(u["username"], username, "username")
    eq(u["subscription_plan"], "pro", "plan")
    eq(u["is_verified"], True, "verified")
    eq(u["full_name"], "Grace Hopper", "full_name")
    eq(user_row(username), [uid, username, email.lower(), "pro", "true",
                            "true"], "user list")
    # Defaults: free, unverified, no full name.
    name2, _, p = create()
    u = expect(login(name2, PW), 200, "login").json["user"]
    eq((u["subscription_plan"], u["is_verified"], u["full_name"]),
       ("free", False, None), "defaults")


def test_ctl_user_create_password_from_stdin():
    username = unique("s")
    pw = "Stdin-Passw0rd"
    p = ctl("user", "create", "--username", username, "--email",
            username + "@example.com", "--password", "-", input=pw + "\n")
    check(re.match(r"^[0-9a-f]{24}\n$", p.stdout), p.stdout)
    expect(login(username, pw), 200, "login with the stdin password")
    eq(login(username, pw + "\n").status, 401, "newline is not part of it")
    # Empty stdin, and a line too long to be a password.
    for data in ("", "A1b" * 2000 + "\n"):
        p = ctl("user", "create", "--username", unique("s"), "--email",
                unique("s") + "@example.com", "--password", "-",
                input=data, check=False)
        eq(p.returncode, 1, "exit for stdin %r..." % data[:10])


def test_ctl_user_create_password_prompt_on_terminal():
    """--password - on a terminal asks for it and does not echo it."""
    import pty
    import select
    username = unique("t")
    pw = "Typed-Passw0rd"
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(CTL, [CTL, "--config", CONF, "user", "create", "--username",
                       username, "--email", username + "@example.com",
                       "--password", "-"])
    out = b""

    def read_until(want, secs=15):
        nonlocal out
        end = time.time() + secs
        while want not in out and time.time() < end:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break
    read_until(b"Password: ")
    check(b"Password: " in out, "no prompt: %r" % out)
    os.write(fd, pw.encode() + b"\n")
    read_until(b"\n", 15)
    end = time.time() + 15
    while time.time() < end:
        try:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                out += chunk
        except OSError:
            break
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, 9)
        fail("devpocketctl did not finish: %r" % out)
    os.close(fd)
    check(pw.encode() not in out, "the password was echoed: %r" % out)
    check(re.search(rb"[0-9a-f]{24}", out), "no user id: %r" % out)
    expect(login(username, pw), 200, "login with the typed password")


def test_ctl_user_create_duplicates():
    username, email, _ = create()
    p = ctl("user", "create", "--username", username.upper(), "--email",
            "other_" + email, "--password", PW, check=False)
    eq(p.returncode, 1, "exit for a duplicate username")
    check("username already taken" in p.stderr, p.stderr)
    p = ctl("user", "create", "--username", unique("d"), "--email",
            email.upper(), "--password", PW, check=False)
    eq(p.returncode, 1, "exit for a duplicate email")
    check("email already registered" in p.stderr, p.stderr)
    check(p.stdout == "", "no id printed: %r" % p.stdout)


def test_ctl_user_create_validation():
    good = {"--username": None, "--email": None, "--password": PW}
    bad = [
        ("--username", "ab"),
        ("--username", "x" * 31),
        ("--username", "has space"),
        ("--username", "bad\u00e9name"),
        ("--username", "semi;colon"),
        ("--email", "no-at-sign"),
        ("--email", "a@b"),
        ("--email", "x" * 300 + "@example.com"),
        ("--password", "Sh0rt"),
        ("--password", "alllowercase1"),
        ("--password", "A1b" * 50),
        ("--plan", "gold"),
        ("--plan", ""),
        ("--full-name", "n" * 101),
    ]
    for key, value in bad:
        username = unique("v")
        args = dict(good)
        args["--username"] = username
        args["--email"] = username + "@example.com"
        args[key] = value
        flat = [x for kv in args.items() for x in kv]
        p = ctl("user", "create", *flat, check=False)
        eq(p.returncode, 1, "exit for %s %r" % (key, value[:20]))
        check(p.stdout == "", "%s %r created a user" % (key, value[:20]))
        eq(login(args["--username"], args["--password"]).status, 401,
           "login after refused %s" % key)
    # Missing required options and stray arguments are usage errors.
    for args in (["--username", unique("m"), "--email", "m@example.com"],
                 ["--email", "m@example.com", "--password", PW],
                 ["--username", unique("m"), "--email", "m@example.com",
                  "--password", PW, "extra"],
                 ["--bogus"]):
        p = ctl("user", "create", *args, check=False)
        eq(p.returncode, 2, "exit for %r" % args)
        check("usage:" in p.stderr, p.stderr)


def test_ctl_user_set_plan_and_verify():
    username, _, _ = create()
    p = ctl("user", "set-plan", username.upper(), "starter")
    check("starter" in p.stdout, p.stdout)
    eq(user_row(username)[3], "starter", "plan after set-plan")
    ctl("user", "set-plan", username, "admin")
    eq(user_row(username)[3], "admin", "plan after set-plan admin")
    p = ctl("user", "set-plan", username, "platinum", check=False)
    eq(p.returncode, 1, "exit for an unknown plan")
    eq(user_row(username)[3], "admin", "plan unchanged")
    eq(user_row(username)[5], "false", "not verified yet")
    ctl("user", "verify", username.lower())
    eq(user_row(username)[5], "true", "verified")
    u = expect(login(username, PW), 200, "login").json["user"]
    eq((u["subscription_plan"], u["is_verified"]), ("admin", True), "user")
    for sub in (["set-plan", "nobody_" + unique("n"), "pro"],
                ["verify", "nobody_" + unique("n")],
                ["disable", "nobody_" + unique("n")],
                ["enable", "nobody_" + unique("n")]):
        p = ctl("user", *sub, check=False)
        eq(p.returncode, 1, "exit for %r" % sub)
        check("no such user" in p.stderr, p.stderr)
    # A pattern is not a username.
    p = ctl("user", "verify", "%", check=False)
    eq(p.returncode, 1, "exit for '%'")


def test_ctl_user_disable_revokes_sessions():
    username, _, _ = create()
    t1 = expect(login(username, PW), 200, "login 1").json["access_token"]
    t2 = expect(login(username, PW), 200, "login 2").json["access_token"]
    expect(me(t1), 200, "me before disable")
    p = ctl("user", "disable", username.upper())
    check("2 login session(s) revoked" in p.stdout, p.stdout)
    eq(me(t1).status, 401, "token 1 after disable")
    eq(me(t2).status, 401, "token 2 after disable")
    r = login(username, PW)
    eq((r.status, (r.json or {}).get("detail")), (403, "Account is disabled"),
       "login when disabled")
    eq(user_row(username)[4], "false", "active in user list")
    ctl("user", "enable", username)
    eq(user_row(username)[4], "true", "active after enable")
    t3 = expect(login(username, PW), 200, "login after enable")
    expect(me(t3.json["access_token"]), 200, "me after enable")
    # The old sessions stay revoked.
    eq(me(t1).status, 401, "token 1 after enable")


def test_ctl_doctor_healthy():
    p = ctl("doctor", check=False)
    lines = p.stdout.splitlines()
    check(lines and lines[-1] == "verdict: healthy",
          "doctor: %s %s" % (p.stdout, p.stderr))
    eq(p.returncode, 0, "doctor exit")
    for want in ("config", "jwt_key_file", "secret_key_file", "database",
                 "schema", "runtime_dir", "mail"):
        check(any(re.match(r"^OK +%s: " % want, l) for l in lines),
              "no OK line for %s: %s" % (want, p.stdout))
    check(any(re.match(r"^OK +socket \S+\.sock: ", l) for l in lines),
          "no responder socket checked: %s" % p.stdout)
    check(not any(l.startswith("FAIL") for l in lines), p.stdout)


def test_ctl_doctor_reports_problems():
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "devpocket.conf")
        key = os.path.join(d, "jwt.key")
        with open(key, "w") as f:
            f.write("00" * 32 + "\n")
        os.chmod(key, 0o644)
        short = os.path.join(d, "secret.key")
        with open(short, "w") as f:
            f.write("abc\n")
        os.chmod(short, 0o600)
        with open(conf, "w") as f:
            f.write("[database]\nurl = host=%s/nosock dbname=x user=x\n"
                    "connect_timeout = 2\n"
                    "[auth]\njwt_key_file = %s\nsecret_key_file = %s\n"
                    "[web]\nruntime_dir = %s/nonexistent\n"
                    "[mail]\ntransport = file\nfile_dir = %s/nomail\n"
                    % (d, key, short, d, d))
        p = raw_ctl("doctor", conf=conf)
        eq(p.returncode, 1, "doctor exit")
        out = p.stdout
        for name in ("jwt_key_file", "secret_key_file", "database", "schema",
                     "runtime_dir", "mail"):
            check(re.search(r"^FAIL %s: " % name, out, re.M),
                  "no FAIL line for %s: %s" % (name, out))
        check("world-readable" in out, out)
        check(re.search(r"^OK +config: ", out, re.M), out)
        check(re.search(r"^verdict: 6 problem\(s\)$", out, re.M), out)
        # A broken config file is a problem too, not a crash.
        with open(conf, "a") as f:
            f.write("[web]\nno_such_key = 1\n")
        p = raw_ctl("doctor", conf=conf)
        eq(p.returncode, 1, "doctor exit with a bad config")
        check(re.search(r"^FAIL config: .*no_such_key", p.stdout, re.M),
              p.stdout)
        check(re.search(r"^verdict: \d+ problem\(s\)$", p.stdout, re.M),
              p.stdout)
        # Other commands refuse to run on it.
        p = raw_ctl("user", "list", conf=conf)
        eq(p.returncode, 1, "user list with a bad config")
        check("no_such_key" in p.stderr, p.stderr)
        p = raw_ctl("migrate", conf=os.path.join(d, "missing.conf"))
        eq(p.returncode, 1, "migrate with a missing --config file")


def test_ctl_doctor_mail_settings():
    """doctor fails a mail configuration that cannot deliver (a from that
    no message can carry, smtp_url's scheme not the transport's), and
    never prints the password in smtp_url; the worker refuses to start on
    either."""
    secret = "Pw-" + unique("x")
    with tempfile.TemporaryDirectory() as d:
        for mail, want in (
                ("transport = smtps\nsmtp_url = smtp://u:%s@localhost:25\n"
                 % secret, "must start with smtps://"),
                ("transport = file\nfile_dir = %s\nfrom = a\n" % d,
                 "[mail] from")):
            conf = os.path.join(d, "devpocket.conf")
            with open(CONF) as f:
                base = f.read()
            with open(conf, "w") as f:
                f.write(base + "\n[mail]\n" + mail)
            p = raw_ctl("doctor", conf=conf)
            eq(p.returncode, 1, "doctor exit for %r" % mail)
            check(re.search(r"^FAIL mail: .*%s" % re.escape(want), p.stdout,
                            re.M), p.stdout)
            check(secret not in p.stdout, "the URL's password is shown")
            w = subprocess.run([WORKER, "--config", conf, "--once"],
                               capture_output=True, text=True, timeout=30)
            eq(w.returncode, 1, "worker exit for %r" % mail)
            check(want in w.stderr, "worker: %r" % w.stderr)
            check(secret not in w.stderr, "the worker shows the password")


def test_ctl_config_dump_masks_secrets():
    secret = "Hunter2-" + unique("x")
    p = raw_ctl("config", "dump", conf=CONF,
                env_extra={"DEVPOCKET_MAIL_SMTP_PASSWORD": secret})
    eq(p.returncode, 0, "config dump exit")
    check("[database]" in p.stdout and "[mail]" in p.stdout, p.stdout[:300])
    check(secret not in p.stdout, "smtp_password is shown in the dump")


def test_ctl_usage_errors():
    for args in ([], ["bogus"], ["user"], ["user", "bogus"],
                 ["user", "verify"], ["user", "verify", "a", "b"],
                 ["user", "list", "x"], ["config"], ["config", "load"],
                 ["migrate", "now"], ["--help"], ["--no-such-option"]):
        p = raw_ctl(*args, conf=CONF)
        eq(p.returncode, 2, "exit for %r" % args)
        check("usage:" in p.stderr, "stderr for %r: %r" % (args, p.stderr))
        eq(p.stdout, "", "stdout for %r" % args)


WORKER = os.path.join(ROOT, "bin", "devpocket-worker")


def test_worker_usage_and_config_errors():
    for args, rc in ((["--bogus"], 2), (["extra"], 2),
                     (["--config", "/nonexistent/devpocket.conf", "--once"], 1)):
        p = subprocess.run([WORKER] + args, capture_output=True, text=True,
                           timeout=30)
        eq(p.returncode, rc, "worker exit for %r" % args)
        check(p.stderr, "worker %r said nothing" % args)


def test_responder_requires_a_named_config_file():
    """A responder given a config file that is not there (a mistyped
    DEVPOCKET_CONF, or --config) refuses to start, as the worker and
    devpocketctl do, instead of serving on the defaults."""
    prog = os.path.join(ROOT, "cgi-bin", "health")
    env = dict(os.environ, DEVPOCKET_CONF="/nonexistent/devpocket.conf",
               REQUEST_METHOD="GET", DOCUMENT_URI="/health/live")
    for args, e in (([], env), (["--config", "/nonexistent/x.conf"],
                                dict(env, DEVPOCKET_CONF=""))):
        p = subprocess.run([prog] + args, capture_output=True, text=True,
                           env=e, timeout=30, stdin=subprocess.DEVNULL)
        eq(p.returncode, 1, "exit for %r" % args)
        check("nonexistent" in p.stderr, "stderr: %r" % p.stderr)
        eq(p.stdout, "", "no answer on the defaults")


def test_worker_once_and_sigterm():
    import signal
    import time
    # --once with nothing (or little) to do exits 0 by itself.
    p = subprocess.run([WORKER, "--config", CONF, "--once"],
                       capture_output=True, text=True, timeout=30)
    eq(p.returncode, 0, "worker --once exit: %s" % p.stderr[-300:])
    # A second long-running worker beside the stack's stops at once on
    # SIGTERM (the self-pipe wakes its poll) with status 0.
    w = subprocess.Popen([WORKER, "--config", CONF], stderr=subprocess.PIPE,
                         text=True)
    try:
        time.sleep(1.0)
        if w.poll() is not None:
            fail("worker exited early: %s" % w.stderr.read()[-300:])
        t0 = time.time()
        w.send_signal(signal.SIGTERM)
        rc = w.wait(timeout=5)
        took = time.time() - t0
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
    err = w.stderr.read()
    eq(rc, 0, "worker exit after SIGTERM")
    check(took < 1.0, "worker took %.2fs to stop" % took)
    check('"worker ' in err and "stopped" in err, err[-300:])


def test_ctl_keygen():
    d = tempfile.mkdtemp()
    path = os.path.join(d, "k.key")
    p = raw_ctl("keygen", path)
    eq(p.returncode, 0, "keygen exit")
    text = open(path).read()
    check(re.match(r"^[0-9a-f]{64}\n$", text), "64 hex digits")
    eq(oct(os.stat(path).st_mode & 0o777), "0o640", "mode")
    p = raw_ctl("keygen", path)
    eq(p.returncode, 0, "second keygen")
    eq(open(path).read(), text, "kept")
    p = raw_ctl("keygen", os.path.join(d, "no", "such", "dir"))
    eq(p.returncode, 1, "bad path exit")
    eq(raw_ctl("keygen").returncode, 2, "usage")


def test_ctl_templates_list_without_database():
    p = raw_ctl("--config", "/dev/null", "templates", "list", os.path.join(ROOT, "templates", "environments"))
    eq(p.returncode, 0, "list exit: " + p.stderr)
    names = [l.split("\t")[0] for l in p.stdout.splitlines()]
    eq(names, ["golang", "nodejs", "python", "rust", "ubuntu"], "catalog")
    d = tempfile.mkdtemp()
    open(os.path.join(d, "broken.yaml"), "w").write("name: other\n")
    p = raw_ctl("--config", "/dev/null", "templates", "list", d)
    eq(p.returncode, 1, "invalid file exit")
    check("broken.yaml:" in p.stderr, "file:line in " + p.stderr)


def test_ctl_templates_load_is_one_transaction():
    """A database failure part way through templates load loads nothing:
    the file before the failing one is not left in the catalog."""
    first, bad = "aaa-" + unique("t")[:20].lower(), "zzz-" + unique("t")[:20].lower()
    with tempfile.TemporaryDirectory() as d:
        for name in (first, bad):
            with open(os.path.join(d, name + ".yaml"), "w") as f:
                f.write("name: %s\ndisplay_name: T\ndescription: D\n"
                        "category: devops\ndocker_image: alpine\n"
                        "version: \"1\"\n" % name)
        sql("ALTER TABLE templates ADD CONSTRAINT test_no_bad CHECK "
            "(name <> :'p1')", bad)
        try:
            p = ctl("templates", "load", d, check=False)
        finally:
            sql("ALTER TABLE templates DROP CONSTRAINT test_no_bad")
        eq(p.returncode, 1, "exit: %s %s" % (p.stdout, p.stderr))
        check("nothing was loaded" in p.stderr, p.stderr)
        eq(sql("SELECT count(*) FROM templates WHERE name IN (:'p1', "
               ":'p2')", first, bad), [["0"]], "neither file loaded")
        p = ctl("templates", "load", d)
        eq(sql("SELECT count(*) FROM templates WHERE name IN (:'p1', "
               ":'p2')", first, bad), [["2"]], "both, once it can")
        sql("DELETE FROM templates WHERE name IN (:'p1', :'p2')", first, bad)


def test_ctl_templates_load_and_clusters():
    p = ctl("templates", "load", check=False)
    eq(p.returncode, 0, "load: " + p.stderr)
    check(all(l.split()[0] in ("created", "skipped", "updated") for l in p.stdout.splitlines()), p.stdout)
    p = ctl("templates", "load", check=False)
    eq(sorted(l.split()[0] for l in p.stdout.splitlines()), ["skipped"] * 5, "second load")
    p = ctl("templates", "load", "--force", check=False)
    eq(sorted(l.split()[0] for l in p.stdout.splitlines()), ["updated"] * 5, "forced load")
    p = ctl("clusters", "ensure-local", check=False)
    eq(p.returncode, 0, "ensure-local: " + p.stderr)
    p = ctl("clusters", "ensure-local", check=False)
    eq(p.stdout.strip(), "cluster local exists", "second ensure-local")
    eq(ctl("clusters", "ensure-local", "mars", check=False).returncode, 1, "bad region")
    eq(ctl("templates", "frob", check=False).returncode, 2, "usage")
