"""The fixtures every test module uses; shared constants are in ``helpers.py``."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
import warnings
from collections.abc import Iterator

import pytest

from pytest_asynccheck.detectors.budget.stoptrees import SIGNALS as STOP_SIGNALS
from tests.helpers import PYTEST_ASYNCIO_LEAVES_LOOPS


@pytest.fixture
def pytester(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.Pytester]:
    """An inner pytest that loads only the plugins a test names, with stable output."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("COLUMNS", "100")
    for name in ("PY_COLORS", "NO_COLOR", "FORCE_COLOR", "CI", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    # The signals an inner run's plugins handle (pytest-timeout, the trio stop trees).
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    yield pytester
    _assert_no_signal_left(handlers)
    _reset_the_current_loop()
    if PYTEST_ASYNCIO_LEAVES_LOOPS:
        # Loops some pytest-asyncio versions never close (see ``PYTEST_ASYNCIO_LEAVES_LOOPS``)
        # are freed here, not during a later test, where their ResourceWarnings would be
        # reported against that test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def _reset_the_current_loop() -> None:
    """Put the thread's current loop back as a new process has it. pytest-asyncio (0.24 to 1.3,
    with or without the checks) leaves a fresh loop set as the current one after an
    in-process inner run: closed here, not freed during a later test's inner run, whose
    unraisable-exception hook would report its ResourceWarnings. And after an inner test's
    ``asyncio.run()``, ``get_event_loop()`` raises instead of making a loop, which
    pytest-asyncio 1.1 relies on."""
    policy = asyncio.get_event_loop_policy()
    local = getattr(policy, "_local", None)
    loop = getattr(local, "_loop", None)
    if loop is None and not getattr(local, "_set_called", False):
        return
    if isinstance(loop, asyncio.AbstractEventLoop):
        if loop.is_running():
            return
        if not loop.is_closed():
            loop.close()
    if type(policy) is asyncio.DefaultEventLoopPolicy:
        asyncio.set_event_loop_policy(None)  # a fresh policy: no loop, none set
    else:
        asyncio.set_event_loop(None)


def _assert_no_signal_left(handlers: dict[int, object]) -> None:
    """An in-process inner run must leave no alarm armed and no handler of its own in place: an
    alarm left behind would end this worker during a later test (SIGALRM's default action)."""
    left = []
    if hasattr(signal, "setitimer") and signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        signal.setitimer(signal.ITIMER_REAL, 0)
        left.append("an armed SIGALRM timer")
    for signum, handler in handlers.items():
        if signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)  # type: ignore[arg-type]
            left.append(f"a {signal.Signals(signum).name} handler")
    if left:
        pytest.fail(f"the inner run left {' and '.join(left)} behind", pytrace=False)


@pytest.fixture
def cpu_alone() -> None:
    """Asked for by a test whose outcome depends on when the scheduler runs its threads, or
    that loads a CPU on purpose: it runs alone, no other test running meanwhile in any process
    of this run (see ``_cpu_turns``)."""


@pytest.fixture(autouse=True)
def _cpu_turns(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Every test holds a shared lock on a file in the directory that pytest-xdist's workers
    share, and a ``cpu_alone`` test an exclusive one. A turnstile lock in front, which a test
    waiting to run alone keeps, stops new tests from starting meanwhile: without it, the other
    workers' tests, one after another, would keep it waiting for good."""
    if sys.platform == "win32":
        yield
        return
    import fcntl

    folder = tmp_path_factory.getbasetemp().parent
    alone = "cpu_alone" in request.fixturenames
    with (
        open(folder / "asynccheck-cpu.turnstile", "a") as turnstile,
        open(folder / "asynccheck-cpu.lock", "a") as lock,
    ):
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)


def pytest_configure(config: pytest.Config) -> None:
    if PYTEST_ASYNCIO_LEAVES_LOOPS:
        # In-process inner runs, which inherit this suite's "error" filter, leave those loops
        # for a later test's garbage collection.
        for what in ("<socket.socket", "<function BaseEventLoop.__del__"):
            config.addinivalue_line(
                "filterwarnings",
                f"ignore:Exception ignored in. {what}:pytest.PytestUnraisableExceptionWarning",
            )
