"""Async fixtures are checked like the test body, whoever runs them: a finding made in a
fixture's setup or teardown names the fixture and the step, sits at the fixture's line and fails
the test that requested it in that phase; tasks a fixture starts are judged when it is torn
down; and correct fixtures pass."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from conftest import ANYIO, ARGS, ASYNCIO, PYTEST_ASYNCIO_0_23

TRIO = ("-p", "trio")

pytestmark = pytest.mark.skipif(
    PYTEST_ASYNCIO_0_23, reason="pytest-asyncio 0.23 makes async fixtures sync at collection"
)


@dataclass(frozen=True)
class Runner:
    """How an inner run declares its async fixtures and tests."""

    name: str
    plugins: tuple[str, ...]
    ini: str
    header: str
    fixture: str
    test_mark: str
    #: Whether tasks are asyncio tasks (leaks and lost exceptions are asyncio's).
    asyncio: bool = True
    #: pytest-trio runs fixtures' setup and teardown in the call phase.
    trio_phases: bool = False


def _asyncio_runner(mode: str, loop_scope: str) -> Runner:
    if mode == "strict":
        return Runner(
            f"asyncio-strict-{loop_scope}",
            ASYNCIO,
            "asyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n",
            "import pytest_asyncio",
            f"@pytest_asyncio.fixture(loop_scope={loop_scope!r})",
            f"@pytest.mark.asyncio(loop_scope={loop_scope!r})",
        )
    return Runner(
        f"asyncio-auto-{loop_scope}",
        ASYNCIO,
        "asyncio_mode = auto\n"
        f"asyncio_default_fixture_loop_scope = {loop_scope}\n"
        f"asyncio_default_test_loop_scope = {loop_scope}\n",
        "",
        "@pytest.fixture",
        "",
    )


RUNNERS = [
    Runner("standalone", (), "", "", "@pytest.fixture", ""),
    *(_asyncio_runner(m, s) for m in ("strict", "auto") for s in ("function", "module", "session")),
    Runner(
        "anyio-asyncio",
        (*ANYIO, "-p", "no:asyncio"),
        "",
        "@pytest.fixture\ndef anyio_backend():\n    return 'asyncio'\n",
        "@pytest.fixture",
        "@pytest.mark.anyio",
    ),
    Runner(
        "anyio-trio",
        (*ANYIO, "-p", "no:asyncio"),
        "",
        "@pytest.fixture\ndef anyio_backend():\n    return 'trio'\n",
        "@pytest.fixture",
        "@pytest.mark.anyio",
        asyncio=False,
    ),
    Runner(
        "pytest-trio",
        (*TRIO, "-p", "no:asyncio"),
        "",
        "",
        "@pytest.fixture",
        "@pytest.mark.trio",
        asyncio=False,
        trio_phases=True,
    ),
]

#: What a fixture does in the step under check, the finding's kind and the text it shows;
#: ``# HERE`` marks the line the finding must name.
CHECKS = {
    "blocking": (
        "time.sleep(0.01)  # HERE",
        "blocking",
        "blocking call time.sleep()",
    ),
    "stall": (
        "spin(0.3)  # HERE",
        "blocking",
        "the event loop was stalled for at least",
    ),
    "unawaited": ("helper()  # HERE", "unawaited", "coroutine 'helper' was never awaited"),
    "leaked": (
        "asyncio.create_task(forever())  # HERE",
        "leaked-task",
        "running forever() was still pending when fixture 'fx' was torn down",
    ),
    "lost": (
        "asyncio.create_task(boom())\n    await asyncio.sleep(0.05)",
        "never-retrieved",
        "running boom() raised ValueError: lost, and the exception was never retrieved",
    ),
}

PRELUDE = """\
import asyncio
import time

import pytest
{header}

def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:  # SPIN
        pass

async def helper():
    pass

async def forever():
    while True:
        await asyncio.sleep(0.01)

async def boom():
    raise ValueError("lost")  # BOOM

"""

FIXTURE = """\
{decorator}
async def fx():
    {setup}
    yield 1
    {teardown}

{test_mark}
async def test_it(fx):
    assert fx == 1
"""

GOOD = """\
{decorator}
async def fx():
    task = asyncio.create_task(forever())
    await asyncio.to_thread(time.sleep, 0.01)
    yield 1
    await asyncio.to_thread(time.sleep, 0.01)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass

{test_mark}
async def test_it(fx):
    await asyncio.sleep(0)
"""

TRIO_GOOD = """\
import trio

{decorator}
async def fx():
    await trio.to_thread.run_sync(time.sleep, 0.01)
    yield 1
    await trio.sleep(0)

{test_mark}
async def test_it(fx):
    assert fx == 1
"""


def _line_of(source: str, marker: str) -> int:
    return next(n for n, line in enumerate(source.splitlines(), 1) if marker in line)


@pytest.mark.parametrize("runner", RUNNERS, ids=[r.name for r in RUNNERS])
def test_each_check_sees_async_fixtures_in_setup_and_teardown(
    pytester: pytest.Pytester, runner: Runner
) -> None:
    pytester.makeini("[pytest]\n" + runner.ini)
    prelude = PRELUDE.format(header=runner.header)
    cases = []
    files = {}
    for check, (code, kind, text) in CHECKS.items():
        if kind in ("leaked-task", "never-retrieved") and not runner.asyncio:
            continue
        for step in ("setup", "teardown"):
            body = FIXTURE.format(
                decorator=runner.fixture,
                test_mark=runner.test_mark,
                setup=code if step == "setup" else "pass",
                teardown=code if step == "teardown" else "pass",
            )
            source = prelude + body
            name = f"test_{check}_{step}"
            files[name] = source
            marker = {"stall": "# SPIN", "lost": "# BOOM"}.get(check, "# HERE")
            function = {"stall": "spin", "lost": "boom"}.get(check, "fx")
            line = _line_of(source, marker)
            cases.append((name, kind, text, step, line, function))
    good = TRIO_GOOD if not runner.asyncio else GOOD
    files["test_good"] = prelude + good.format(decorator=runner.fixture, test_mark=runner.test_mark)
    pytester.makepyfile(**files)
    result = pytester.runpytest(*ARGS, *runner.plugins, "-p", "no:randomly")
    output = result.stdout.str()
    teardown_errors = 0
    for name, kind, text, step, line, function in cases:
        # A leak is judged when the fixture is torn down, wherever its task was started.
        phase = "teardown" if kind == "leaked-task" else step
        if runner.trio_phases:
            phase = "call"
        teardown_errors += phase == "teardown"
        head = f"asynccheck found 1 problem in {name}.py::test_it ({phase}):"
        assert head in output, (name, output)
        section = output.split(head, 1)[1].splitlines()
        finding = section[1]
        assert finding.startswith(f"[{kind}] "), (name, finding)
        assert text in finding, (name, finding)
        assert finding.endswith(f", in fixture 'fx' ({step})"), (name, finding)
        assert section[2] == f"  at {name}.py:{line} in {function}", (name, section)
    outcomes = result.parseoutcomes()
    outcomes.pop("warnings", None)  # pytest's own, about re-imported plugins in-process
    if runner.trio_phases:
        assert outcomes == {"failed": len(cases), "passed": 1}, output
    else:
        # A test whose fixture failed in its teardown passed first, as pytest counts.
        assert outcomes == {"errors": len(cases), "passed": teardown_errors + 1}, output
    assert "test_good.py::test_it" not in output
