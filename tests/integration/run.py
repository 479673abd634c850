#!/usr/bin/env python3
"""tests/integration/run.py: runs the integration tests.

    run.py [-k SUBSTRING] [-x] [MODULE | MODULE::TEST ...]

Without arguments every tests/integration/test_*.py runs, modules in name
order, tests in the order they are defined.  MODULE is test_auth or
test_auth.py; MODULE::TEST selects one test; -k keeps tests whose
"module::name" contains SUBSTRING; -x stops at the first failure.  Prints
"PASS module::name" or "FAIL module::name: reason" per test and finally
"integration: N passed, N failed"; exits 1 when anything failed.

The stack must be running (tests/run-all.sh starts it); see harness.py for
DP_TEST_URL and DP_TEST_VAR.  A test fails after DP_TEST_LIMIT seconds
(default 120).
"""

import importlib
import inspect
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

LIMIT = int(os.environ.get("DP_TEST_LIMIT", "120"))


class Timeout(Exception):
    pass


def on_alarm(signum, frame):
    raise Timeout("test took longer than %d s" % LIMIT)


def collect(module):
    """(name, function) of a module's tests in definition order."""
    seen = {}
    for mod, name, fn in harness.REGISTRY:
        if mod == module.__name__:
            seen[name] = fn
    for name, fn in vars(module).items():
        if name.startswith("test_") and inspect.isfunction(fn) and \
                fn.__module__ == module.__name__:
            seen.setdefault(name, fn)

    def line(item):
        try:
            return inspect.getsourcelines(item[1])[1]
        except (OSError, TypeError):
            return 0
    return sorted(seen.items(), key=line)


def reason(exc):
    """One line saying why a test failed."""
    if isinstance(exc, (AssertionError, Timeout)) and str(exc):
        msg = str(exc)
    else:
        # An unexpected exception: its type and where it was raised in the
        # test code.
        tb = traceback.extract_tb(exc.__traceback__)
        where = ""
        for fr in reversed(tb):
            if os.path.basename(fr.filename).startswith("test_"):
                where = " (%s:%d)" % (os.path.basename(fr.filename),
                                      fr.lineno)
                break
        msg = "%s: %s%s" % (type(exc).__name__, exc, where)
    msg = " | ".join(msg.splitlines())
    return msg if len(msg) <= 2000 else msg[:2000] + "..."


def main(argv):
    keyword = None
    stop_first = False
    wanted = []
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "-k" and args:
            keyword = args.pop(0)
        elif a == "-x":
            stop_first = True
        elif a in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        else:
            wanted.append(a)

    selected = {}
    if wanted:
        for w in wanted:
            mod, _, name = w.partition("::")
            mod = os.path.basename(mod)
            if mod.endswith(".py"):
                mod = mod[:-3]
            selected.setdefault(mod, set())
            if name:
                selected[mod].add(name)
        modules = sorted(selected)
    else:
        modules = sorted(f[:-3] for f in os.listdir(HERE)
                         if f.startswith("test_") and f.endswith(".py"))

    passed = failed = 0
    signal.signal(signal.SIGALRM, on_alarm)
    for modname in modules:
        try:
            module = importlib.import_module(modname)
        except Exception as e:  # a broken module is one failure
            print("FAIL %s (import): %s" % (modname, reason(e)), flush=True)
            failed += 1
            continue
        tests = collect(module)
        names = selected.get(modname)
        if names:
            missing = names - {n for n, _ in tests}
            for n in sorted(missing):
                print("FAIL %s::%s: no such test" % (modname, n), flush=True)
                failed += 1
            tests = [t for t in tests if t[0] in names]
        for name, fn in tests:
            full = "%s::%s" % (modname, name)
            if keyword and keyword not in full:
                continue
            harness.new_client_ip()
            t0 = time.time()
            signal.alarm(LIMIT)
            try:
                fn()
            except BaseException as e:
                signal.alarm(0)
                if isinstance(e, KeyboardInterrupt):
                    raise
                print("FAIL %s: %s" % (full, reason(e)), flush=True)
                failed += 1
                if stop_first:
                    break
            else:
                signal.alarm(0)
                print("PASS %s (%.2fs)" % (full, time.time() - t0),
                      flush=True)
                passed += 1
        if stop_first and failed:
            break
    print("integration: %d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
