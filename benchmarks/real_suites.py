"""Run real asyncio libraries' own test suites, from their pinned sdists, with and without
``--asynccheck``, and compare every test's outcome.

    python benchmarks/real_suites.py [--suites httpx,asgiref] [--keep DIR] [--requirements-only]
                                     [--plugin-snapshot]

Each suite gets a virtual environment of its own with its pinned requirements and the plugin
from this checkout. The suite runs from the unpacked sdist, so the library's modules are
imported from there and a finding in the library names its file (``httpx/_config.py``), apart
from the suite's tests (``tests/...``).

A test's outcome may differ with the checks only because of a finding listed below (``Known``:
a true positive, or a false positive with what the plugin should change), or for a listed
reason (``Difference``). The script prints each suite's ``asynccheck`` section, its findings
(listed or not), and every changed outcome with its explanation; it exits 1 when an outcome
changed for any other reason or a suite could not be run. ``--keep DIR`` keeps the
environments and sdists for the next run. benchmarks/README.md explains every listed entry.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: The tools every suite runs under, pinned so a run compares like with like.
BASE = ("pytest==9.2.0",)
#: A run that has not finished by then is stopped and its suite counted as not run.
RUN_TIMEOUT = 1200

#: A pytest plugin, put on each run's path, that writes every test's outcome and failure text.
OUTCOMES_PLUGIN = """
import json, os

OUTCOMES = {}
RANK = {"passed": 0, "skipped": 1, "xfailed": 1, "xpassed": 2, "failed": 3, "error": 4}


def pytest_runtest_logreport(report):
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    elif report.failed:
        outcome = "failed" if report.when == "call" else "error"
    else:
        outcome = report.outcome
    old, text = OUTCOMES.get(report.nodeid, (None, ""))
    if report.failed:
        text += report.longreprtext
    if old is None or RANK[outcome] > RANK[old]:
        old = outcome
    OUTCOMES[report.nodeid] = (old, text)


def pytest_sessionfinish(session):
    with open(os.environ["REAL_SUITES_OUTCOMES"], "w") as out:
        json.dump(OUTCOMES, out)
"""


@dataclass(frozen=True)
class Known:
    """A finding the suite is known to produce: patterns over its ``file:line``, its call and
    its test's node id. A true positive, unless ``fix`` says what the plugin should change."""

    kind: str
    place: str
    why: str
    call: str = "*"
    nodeid: str = "*"
    fix: str = ""

    def matches(self, finding: dict[str, Any]) -> bool:
        return (
            finding["kind"] == self.kind
            and fnmatch.fnmatch(f"{finding['file']}:{finding['line']}", self.place)
            and fnmatch.fnmatch(finding["call"], self.call)
            and fnmatch.fnmatch(finding["nodeid"], self.nodeid)
        )


@dataclass(frozen=True)
class Difference:
    """A test whose outcome is known to differ with the checks for a reason other than a
    finding: its node id matches ``nodeid`` and its failure's text contains ``text``."""

    nodeid: str
    text: str
    why: str


@dataclass(frozen=True)
class Suite:
    version: str
    #: pinned requirements of the suite's tests beyond the library and its dependencies
    requirements: tuple[str, ...]
    tests: str
    pytest_args: tuple[str, ...]
    findings: tuple[Known, ...] = ()
    differences: tuple[Difference, ...] = ()
    #: the library's extras to install, as in ``[http2]``
    extras: str = ""
    #: minutes of install and two runs, and so left out of CI's smoke run (``--quick``)
    slow: bool = False


SUITES: dict[str, Suite] = {
    "aiofiles": Suite(
        "25.1.0",
        ("pytest-asyncio==1.5.0",),
        "tests",
        ("-o", "asyncio_mode=auto"),
        findings=(
            Known(
                "blocking",
                "tests/*",
                "the suite's async tests read files again with a plain open() on "
                "the loop thread, to compare with what aiofiles read",
            ),
            Known(
                "unclosed",
                "tests/threadpool/test_*.py:*",
                "test_simple_read, test_simple_readinto (binary) and test_simple_read (text) "
                "compare with open(filename).read() and never close that file",
                call="open()",
            ),
            Known(
                "unclosed",
                "tests/test_simple.py:*",
                "test_serve_small_bin_file(_sync) connect with asyncio.open_connection and "
                "never close the writer: the server's close leaves the client's side half-open",
                call="StreamWriter",
            ),
            Known(
                "leaked-task",
                "tests/threadpool/test_concurrency.py:56",
                "test_slow_file calls spam_task.cancel() and returns without awaiting it",
            ),
            Known(
                "leaked-task",
                "tests/threadpool/test_concurrency.py:23",
                "test_slow_file's server handler serve_file() is still closing its file (in a "
                "thread) when the test returns; wait_closed() does not wait for handlers",
            ),
        ),
    ),
    "aiosqlite": Suite(
        "0.22.1",
        ("pytest-asyncio==1.5.0",),
        "aiosqlite/tests/smoke.py",
        ("-o", "python_files=smoke.py"),
        findings=(
            Known(
                "blocking",
                "aiosqlite/tests/*",
                "the suite's async tests call sqlite3.connect / execute and Thread.join on "
                "the loop thread",
            ),
        ),
    ),
    "httpx": Suite(
        "0.28.1",
        # httpx's requirements.txt at 0.28.1 (not in the sdist), less its lint and docs tools.
        (
            "anyio==4.16.0",
            "chardet==5.2.0",
            "click==8.1.8",  # click 8.2 deprecates what test_main.py uses, an error there
            "cryptography==43.0.1",
            "trio==0.27.0",
            "trustme==1.2.0",
            "uvicorn==0.32.0",
        ),
        "tests",
        # Tests marked "network" reach beyond loopback (an unroutable address for the connect
        # timeout, public proxies), which the machines running this do not allow.
        ("-m", "not network"),
        extras="[brotli,cli,http2,socks,zstd]",
        findings=(
            Known(
                "blocking",
                "httpx/_config.py:40",
                "every AsyncClient() loads certifi's CA bundle (ssl.create_default_context, a "
                "catalogued call) on the loop thread, 60-400 ms on a loaded machine",
                call="ssl.create_default_context",
            ),
            Known(
                "blocking",
                "*",
                "test_write_timeout builds a 100 MB body on the loop thread (0.2-0.6 s here) "
                "in the turn that also loads the CA bundle; the stall is reported at the line "
                "the loop was on when sampled",
                call="stall",
                nodeid="tests/test_timeouts.py::test_write_timeout*",
            ),
            Known(
                "blocking",
                "httpx/_multipart.py:52",
                "the process's first mimetypes.guess_type() reads the system's mime.types "
                "files on the loop thread (once per process: in whichever test comes first)",
                call="open",
            ),
        ),
    ),
    "asgiref": Suite(
        "3.13.0",
        ("pytest-asyncio==1.5.0", "packaging==26.4"),
        "tests",
        (),
        findings=(
            Known(
                "leaked-task",
                "tests/test_server.py:*",
                "asyncio.gather(server.arun(), do_test()) propagates do_test's Done and leaves "
                "its sibling, the server's arun(), pending when the test returns",
            ),
            Known(
                "leaked-task",
                "asgiref/server.py:77",
                "StatelessServer.arun gathers application_checker() and handle(): when one "
                "raises, gather leaves the other pending",
            ),
            Known(
                "leaked-task",
                "asgiref/server.py:106",
                "the server's application instances, still running when its arun() was "
                "abandoned, never stopped",
            ),
            Known(
                "leaked-task",
                "asgiref/testing.py:42",
                "ApplicationCommunicator's application task is still finishing (its sync WSGI "
                "app runs in a thread) when the test_wsgi tests return without "
                "`await instance.wait()`",
            ),
            Known(
                "unclosed",
                "tests/test_server.py:59",
                "the tests' Client opens a UDP socket in its __init__ and test_stateless_server "
                "and test_server_delete_instance never call client.close(): the sockets are "
                "freed open when the tests end",
                call="socket.socket",
            ),
            Known(
                "blocking",
                "tests/test_sync_thread_sensitive_context.py:392",
                "executor.submit(...).result() waits for a thread on the loop thread",
                call="concurrent.futures.Future.result",
            ),
        ),
    ),
    "janus": Suite(
        "2.0.0",
        ("pytest-asyncio==1.5.0", "pytest-benchmark==5.3.1"),
        "tests",
        # setup.cfg's addopts need pytest-cov, which only measures coverage.
        ("-o", "addopts=", "-p", "no:randomly"),
        findings=(
            Known(
                "blocking",
                "tests/test_async.py:14",
                "the async tests' close() helper polls a threading lock with "
                "time.sleep(0.001) on the loop thread before aclose()",
                call="time.sleep",
            ),
            Known(
                "blocking",
                "janus/__init__.py:*",
                "test_sync.py's async tests drive the sync side (sync_q.put/get/join, which "
                "wait on a threading.Condition for worker threads) from the loop thread",
                call="threading.Condition.wait",
                nodeid="tests/test_sync.py::*",
            ),
            Known(
                "blocking",
                "tests/test_sync.py:*",
                "the same tests' BlockingTestMixin joins its trigger thread on the loop thread "
                "right after the thread unblocked the queue: reported when the thread has not "
                "quite ended yet (a few microseconds, some runs only; seen on 3.13)",
                call="threading.Thread.join",
                nodeid="tests/test_sync.py::*",
            ),
        ),
        slow=True,  # two runs of about 20 s each: its sync tests join threads
    ),
    "aiostream": Suite(
        "0.8.1",
        ("pytest-asyncio==1.5.0",),
        "tests",
        # pyproject's addopts need pytest-cov, which only measures coverage.
        ("-o", "addopts=--strict-markers", "-p", "no:randomly"),
    ),
    "asyncstdlib": Suite(
        "3.14.0",
        ("typing-extensions==4.16.0",),  # test_functools_lru.py imports it
        "unittests",
        ("-p", "no:randomly"),
    ),
    "anyio": Suite(
        "4.16.0",
        # anyio's "test" dependency group at 4.16.0 (not installable from the sdist), less
        # coverage; the suite runs on asyncio, asyncio+uvloop and trio through its own plugin.
        (
            "trio==0.35.0",
            "blockbuster==1.5.29",
            "hypothesis==6.170.17",
            "psutil==7.2.2",
            "pytest-mock==3.17.0",
            "pytest-timeout==2.4.0",
            "trustme==1.2.1",
            "truststore==0.10.5",
            "uvloop==0.23.0",
        ),
        "tests",
        (
            # Tests marked "network" resolve or connect to hosts beyond loopback; the ipv6 and
            # dualstack ones need an IPv6 loopback, which the machines running this lack.
            "-m",
            "not network",
            "-k",
            "not ipv6 and not dualstack",
            # These run pytest in a subprocess with a 3 s timeout, which a loaded 2-core
            # machine overruns with and without the checks.
            "--deselect",
            "tests/test_pytest_plugin.py::test_keyboardinterrupt_during_test",
            "--deselect",
            "tests/test_pytest_plugin.py::test_dynamic_async_fixture_access_does_not_hang",
        ),
        findings=(
            Known(
                "blocking",
                "tests/*",
                "the suite's async tests write, read and open their fixture files with pathlib "
                "and open() on the loop thread (test_file, test_fileio, test_sockets, "
                "test_subprocesses, test_tempfile, test_to_process)",
                call="pathlib.Path.*",
            ),
            Known(
                "blocking",
                "tests/*",
                "open() on the loop thread: test_tempfile's mkstemp tests reopen the file, and "
                "trustme's configure_cert writes its key to a temporary file (test_tls)",
                call="open",
            ),
            Known(
                "blocking",
                "tests/*",
                "shutil.rmtree in async test bodies (test_tempfile's mkdtemp tests, "
                "test_sockets' tempfile.TemporaryDirectory)",
                call="shutil.rmtree",
            ),
            Known(
                "blocking",
                "tests/test_fileio.py:*",
                "test_is_block_device lists /dev with os.scandir on the loop thread",
                call="os.scandir",
            ),
            Known(
                "blocking",
                "tests/*",
                "test_tls and test_sockets build SSL contexts (ssl.create_default_context, "
                "load_cert_chain) on the loop thread",
                call="ssl.*",
            ),
            Known(
                "blocking",
                "tests/*",
                "test_tls and test_sockets drive the other end of a connection with plain "
                "blocking sockets (connect, accept, recv, sendall of stream sockets) on the "
                "loop thread",
                call="socket.socket.*",
            ),
            Known(
                "blocking",
                "tests/test_sockets.py:*",
                "test_getnameinfo computes the expected answer with socket.getnameinfo(addr, 0), "
                "a reverse look-up, on the loop thread",
                call="socket.getnameinfo",
            ),
            Known(
                "blocking",
                "tests/*",
                "test_tls, test_sockets and test_from_thread join their server threads on the "
                "loop thread",
                call="threading.Thread.join",
            ),
            Known(
                "blocking",
                "tests/test_from_thread.py:*",
                "thread_finished_future.result(3) (:122), and start_blocking_portal() used from "
                "async code (:1054, :1055), wait for another thread on the loop thread",
                call="concurrent.futures.Future.result",
            ),
            Known(
                "blocking",
                "tests/test_to_thread.py:211",
                "test_cancel_wait_on_thread calls future.result(5) on the loop thread; reported "
                "in the runs where the worker thread has not set it yet",
                call="concurrent.futures.Future.result",
            ),
            Known(
                "blocking",
                "tests/test_taskgroups.py:771",
                "test_fail_after_scope_cancelled_before_timeout (xfail) sleeps with time.sleep "
                "on purpose to pass the deadline",
                call="time.sleep",
            ),
            Known(
                "blocking",
                "tests/test_to_thread.py:273",
                "test_asyncio_worker_reused_after_cancelled_call waits with worker.queue.join() "
                "on the loop thread for the worker thread to take its item",
                call="threading.Condition.wait",
            ),
            Known(
                "swallowed-cancel",
                "tests/test_taskgroups.py:*",
                "test_cleanup_after_native_cancel, test_cancel_message_replaced and "
                "test_uncancel_after_taskgroup_cancelled cancel their own task and catch the "
                "CancelledError on purpose, to test anyio's uncancel bookkeeping",
            ),
            Known(
                "swallowed-cancel",
                "anyio/_core/_tasks.py:327",
                "BlockingPortal._call_func catches the cancellation its portal's task group "
                "delivers (except get_cancelled_exc_class(): future.cancel()) and returns "
                "normally (test_aexit_with_exception, test_cancel_portal_future; which of them "
                "in a run depends on timing); reported where the task, TaskHandle._run_coro, "
                "was suspended",
                nodeid="tests/test_from_thread.py::TestBlockingPortal::*",
            ),
            Known(
                "blocking",
                "tests/test_taskgroups.py:*",
                "TestRefcycles' tests call gc.get_referrers() in the test body, which walks "
                "the whole heap on the loop thread: 130-360 ms late in a run of 3,000 tests",
                call="stall",
                nodeid="tests/test_taskgroups.py::TestRefcycles::*",
            ),
            Known(
                "blocking",
                "tests/test_to_thread.py:*",
                "test_run_sync_worker_cyclic_references: the same gc.get_referrers() walks",
                call="stall",
                nodeid="tests/test_to_thread.py::test_run_sync_worker_cyclic_references*",
            ),
        ),
        slow=True,  # about 4 minutes of two runs, and trio, uvloop, hypothesis to install
    ),
    "starlette": Suite(
        "1.10.0",
        # The versions of starlette's uv.lock at 1.10.0 for its "dev" group's test tools and
        # the [full] extra; each anyio test runs on asyncio and trio.
        (
            "anyio==4.15.1",
            "blockbuster==1.5.28",
            "httpx==0.28.1",
            "httpx2[zstd]==2.13.1",
            "importlib-metadata==9.0.1",
            "itsdangerous==2.2.0",
            "jinja2==3.1.6",
            "opentelemetry-api==1.44.0",
            "opentelemetry-sdk==1.44.0",
            "python-multipart==0.0.32",
            "pyyaml==6.0.3",
            "trio==0.34.0",
        ),
        "tests",
        # The permission test expects a directory it made unreadable to be so: the run as root
        # reads it anyway, with and without the checks.
        (
            "--deselect",
            "tests/test_staticfiles.py::test_staticfiles_with_invalid_dir_permissions_returns_401",
        ),
        extras="[full]",
        findings=(
            Known(
                "blocking",
                "tests/*",
                "the suite's async tests write their fixture files (open, Path.write_bytes, "
                "LocalPath.open) on the loop thread before serving them",
                call="open",
            ),
            Known(
                "blocking",
                "tests/test_responses.py:*",
                "test_file_response_on_head_method and test_file_response_multi_range_"
                "unexpected_eof write their files with Path.write_bytes on the loop thread",
                call="pathlib.Path.write_bytes",
            ),
            Known(
                "blocking",
                "starlette/responses.py:320",
                "the process's first mimetypes.guess_type() (FileResponse.__init__) reads the "
                "system's mime.types files on the loop thread (once per process: in whichever "
                "test comes first)",
                call="open",
            ),
            Known(
                "blocking",
                "tests/middleware/test_opentelemetry.py:149",
                "test_explicit_tracer_provider builds a TracerProvider() on the loop thread: "
                "its Resource.create() runs the resource detectors in a ThreadPoolExecutor and "
                "waits for them with future.result()",
                call="concurrent.futures.Future.result",
            ),
            Known(
                "blocking",
                "tests/test_formparsers.py:*",
                "test_urlencoded_limits_stop_parsing_within_a_single_chunk builds a 50 MB "
                'body ("x" * 50 MiB, then .encode()) in the test body on the loop thread: '
                "about 200 ms here",
                call="stall",
                nodeid="tests/test_formparsers.py::test_urlencoded_limits_stop_parsing_within*",
            ),
        ),
        slow=True,  # its many test tools to install, and two runs of 1,400 tests
    ),
}


def sh(
    *cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )


def checked(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if result.returncode:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        result.check_returncode()
    return result


def prepare(name: str, suite: Suite, work: Path, project: bool = True) -> tuple[Path, Path]:
    """The suite's Python and unpacked source, installed once per ``work`` directory: first
    the suite and its requirements, then (``project``) the plugin from this checkout."""
    home = work / name
    python = home / "venv" / "bin" / "python"
    source = home / f"{name}-{suite.version}"
    pip = (python, "-m", "pip")
    if not (home / "requirements-installed").exists():
        home.mkdir(parents=True, exist_ok=True)
        venv.create(home / "venv", with_pip=True, clear=True)
        requirement = f"{name}=={suite.version}"
        checked(
            sh(*pip, "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", home, requirement)
        )
        with tarfile.open(home / f"{name}-{suite.version}.tar.gz") as archive:
            archive.extractall(home, filter="data")
        checked(sh(*pip, "install", "-q", f"{source}{suite.extras}", *BASE, *suite.requirements))
        (home / "requirements-installed").touch()
    (home / "outcomes_plugin.py").write_text(OUTCOMES_PLUGIN)
    if project and not (home / "installed").exists():
        # Editable, so a kept environment runs the checkout as it is now; its requirement
        # (pytest) is in BASE already.
        checked(sh(*pip, "install", "-q", "--no-deps", "-e", REPO))
        (home / "installed").touch()
    return python, source


def install_snapshot(names: list[str], work: Path) -> None:
    """Install the plugin as this checkout is now, not editable, into the prepared environments
    of ``names``, and mark each installed: built once, from a copy, as a wheel, so that nothing
    is written into the checkout while its own suite may be running (CI does this beside it).
    The comparison run then installs nothing; an environment not marked is installed editable
    then, as without this."""
    snapshot = work / "plugin-snapshot"
    shutil.rmtree(snapshot, ignore_errors=True)
    shutil.copytree(
        REPO,
        snapshot / "source",
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv*",
            "__pycache__",
            "*.egg-info",
            "build",
            "dist",
            ".coverage*",
            ".*_cache",
        ),
    )
    homes = [
        work / name
        for name in names
        if (work / name / "requirements-installed").exists()
        and not (work / name / "installed").exists()
    ]
    if not homes:
        return
    wheels = snapshot / "wheels"
    # With a suite's own interpreter and pip, which the system's may lack.
    pip = (homes[0] / "venv" / "bin" / "python", "-m", "pip")
    checked(sh(*pip, "wheel", "-q", "--no-deps", "-w", wheels, snapshot / "source"))
    (wheel,) = glob.glob(str(wheels / "*.whl"))
    for home in homes:
        checked(
            sh(home / "venv" / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", wheel)
        )
        (home / "installed").touch()


def run(
    python: Path, source: Path, suite: Suite, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, tuple[str, str]], float]:
    outcomes = source.parent / "outcomes.json"
    # A run that dies before its session finishes writes nothing: never read the last run's.
    outcomes.unlink(missing_ok=True)
    env = dict(os.environ, REAL_SUITES_OUTCOMES=str(outcomes), PYTHONPATH=str(source.parent))
    env.pop("PYTEST_ADDOPTS", None)
    pytest = (python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "outcomes_plugin")
    start = time.perf_counter()
    result = sh(*pytest, *suite.pytest_args, *extra, suite.tests, cwd=source, env=env)
    took = time.perf_counter() - start
    if not outcomes.exists():
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise subprocess.CalledProcessError(result.returncode, result.args)
    return result, {k: (v[0], v[1]) for k, v in json.loads(outcomes.read_text()).items()}, took


def place(finding: dict[str, Any]) -> str:
    return f"{finding['kind']} {finding['file']}:{finding['line']} {finding['call']}"


def compare(name: str, suite: Suite, work: Path, checks_args: list[str], verbose: bool) -> bool:
    """Run one suite both ways and print what differs; whether every difference is listed."""
    python, source = prepare(name, suite, work)
    plain, before, plain_took = run(python, source, suite)
    report_file = source.parent / "asynccheck.json"
    report_file.unlink(missing_ok=True)
    checks, after, checks_took = run(
        python, source, suite, "--asynccheck", f"--asynccheck-report={report_file}", *checks_args
    )
    findings: list[dict[str, Any]] = json.loads(report_file.read_text())["findings"]
    print(f"## {name} {suite.version}")
    for label, result, took in (("without", plain, plain_took), ("with", checks, checks_took)):
        summary = result.stdout.splitlines()[-1] if result.stdout else result.stderr[-500:]
        print(f"{label} --asynccheck: exit {result.returncode}, {summary} ({took:.0f} s)")
    lines = checks.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "= asynccheck =" in line), None)
    end = next((i for i, line in enumerate(lines) if "short test summary" in line), len(lines))
    print("\n".join(lines[start:end] if start is not None else lines[-15:]))

    unlisted: set[str] = set()
    counts: dict[str, int] = {}
    for finding in findings:
        known = next((k for k in suite.findings if k.matches(finding)), None)
        label = "NOT LISTED" if known is None else "false positive" if known.fix else "listed"
        if known is None:
            unlisted.add(finding["nodeid"])
        where = f"{place(finding)} ({label})"
        counts[where] = counts.get(where, 0) + 1
    print(f"findings at {len(counts)} places, {len(findings)} in all:")
    for where, count in sorted(counts.items()):
        print(f"  {where} x{count}")

    explained = True
    true_positives = 0
    seen: set[Difference] = set()
    for nodeid in sorted(set(before) | set(after)):
        (was, _), (now, text) = before.get(nodeid, ("not run", "")), after.get(nodeid, ("", ""))
        now = now or "not run"
        if was == now:
            continue
        ours = [f for f in findings if f["nodeid"] == nodeid]
        difference = next(
            (d for d in suite.differences if fnmatch.fnmatch(nodeid, d.nodeid) and d.text in text),
            None,
        )
        if difference is not None:
            seen.add(difference)
            verdict = f"known: {difference.why}"
        elif ours and nodeid not in unlisted:
            verdict = "listed findings: " + ", ".join(place(f) for f in ours)
            if all(not k.fix for f in ours for k in suite.findings if k.matches(f)):
                true_positives += 1
                if not verbose:
                    continue
        else:
            explained = False
            verdict = "UNEXPLAINED" + (
                f" (unlisted findings: {', '.join(place(f) for f in ours)})" if ours else ""
            )
        print(f"  changed: {nodeid}: {was} -> {now}; {verdict}")
    if true_positives and not verbose:
        print(f"  changed: {true_positives} tests from listed true positives (--verbose: which)")
    for difference in suite.differences:
        if difference not in seen:
            print(f"  known difference not seen (drop it when fixed): {difference.why}")
    print()
    return explained


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument(
        "--suites",
        default=",".join(SUITES),
        help=f"comma-separated suites to run (default: all of {','.join(SUITES)})",
    )
    parser.add_argument(
        "--stall-threshold",
        help="--asynccheck-stall-threshold for the checked runs (on a machine shared with other "
        "work, a starved loop thread is reported as a stall; 0.5 keeps a smoke run steady)",
    )
    parser.add_argument("--verbose", action="store_true", help="list every changed outcome")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="leave out the suites marked slow ("
        + ",".join(n for n, s in SUITES.items() if s.slow)
        + ")",
    )
    parser.add_argument(
        "--requirements-only",
        action="store_true",
        help="only make the suites' environments with their requirements, in --keep DIR, and "
        "stop; a later run with the same --keep installs the plugin and compares (an editable "
        "install writes into the checkout, so CI makes the environments while its own suite "
        "runs and installs the plugin after it)",
    )
    parser.add_argument(
        "--plugin-snapshot",
        action="store_true",
        help="with --requirements-only: also install the plugin, as the checkout is now, into "
        "the environments, from a wheel built from a copy (nothing is written into the "
        "checkout, so CI does this while its own suite runs)",
    )
    args = parser.parse_args()
    if args.plugin_snapshot and not args.requirements_only:
        parser.error("--plugin-snapshot goes with --requirements-only")
    if args.requirements_only and args.keep is None:
        parser.error("--requirements-only needs --keep DIR: the environments are for a later run")
    checks_args = [f"--asynccheck-stall-threshold={args.stall_threshold}"] * bool(
        args.stall_threshold
    )
    names = [name.strip() for name in args.suites.split(",") if name.strip()]
    unknown = [name for name in names if name not in SUITES]
    if unknown or not names:
        parser.error(f"--suites={args.suites!r}: unknown suite(s); known: {','.join(SUITES)}")
    if args.quick:
        names = [name for name in names if not SUITES[name].slow]
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.keep or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        for name in names:
            try:
                if args.requirements_only:
                    prepare(name, SUITES[name], work, project=False)
                elif not compare(name, SUITES[name], work, checks_args, args.verbose):
                    failed.append(name)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
                print(f"## {name}: could not be run: {error}\n")
                failed.append(name)
        if args.plugin_snapshot:
            try:
                install_snapshot(names, work)
            except (subprocess.SubprocessError, OSError, ValueError) as error:
                print(f"the plugin's snapshot could not be installed: {error}")
    if failed:
        print(f"outcomes changed for unlisted reasons, or not run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
