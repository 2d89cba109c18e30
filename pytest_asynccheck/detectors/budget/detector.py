"""``@pytest.mark.max_wall(seconds)``: a concurrency budget for one test, and the explanation of
where the time went when it is exceeded.

The call phase is measured (setup too with ``--asynccheck-wall-include-setup``) with the
plugin's own clock, so tests that mock ``time`` cannot distort it. The budget is multiplied by
``--asynccheck-wall-factor`` for slow CI machines. A test still running at its budget times
``--asynccheck-hang-factor`` is cancelled and fails with the await tree of its tasks (``hang``).
"""

from __future__ import annotations

import asyncio

from ... import _clock
from ..._events import Detector
from ..._findings import Finding, Kind, Severity
from ..._options import Settings
from ..._session import CheckSession, TestCheck
from ..._warnings import warn_at_item
from ..._wire import BUDGET_PROPERTY
from . import hang
from .timeline import Recorder
from .virtualtime import CANNOT_CONTROL, VirtualClock


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


class BudgetDetector(Detector):
    name = "max-wall"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.phases = ("setup", "call") if settings.wall_include_setup else ("call",)
        self._session: CheckSession | None = None
        self._fallbacks_said: set[str] = set()

    def session_started(self, session: CheckSession) -> None:
        self._session = session

    def phase_started(self, test: TestCheck, phase: str) -> None:
        if test.budget is None:
            return
        if phase == "call" or (phase == "setup" and self.settings.wall_include_setup):
            test.data.setdefault("budget.start", _clock.perf_counter())

    def _virtual(self, test: TestCheck) -> bool:
        return (test.budget_clock or self.settings.clock) == "virtual"

    def task_entered(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if test.budget is None or where != "test":
            return
        if self._virtual(test):
            if loop is None:
                test.data["budget.fallback"] = CANNOT_CONTROL.format(loop="trio run")
                return
            clock = VirtualClock(loop)
            if clock.controlled:
                test.data["budget.clock"] = clock
            else:
                test.data["budget.fallback"] = CANNOT_CONTROL.format(loop=type(loop).__name__)
        if loop is not None and "budget.clock" not in test.data:
            # Under the virtual clock the loop's waits are skipped: nothing to record.
            root = self._session.rootpath if self._session else ""
            test.data["budget.recorder"] = Recorder(loop, root, test.findings)
        settings = self.settings
        seconds = test.budget * settings.wall_factor * settings.hang_factor
        rootdir = self._session.rootpath if self._session else ""
        if loop is not None:
            # On the loop's clock, so in virtual time when the budget is checked in it.
            hang.arm(test, loop, seconds, rootdir)
        else:
            hang.arm_trio(test, seconds, rootdir)

    def task_exited(
        self, test: TestCheck, loop: asyncio.AbstractEventLoop | None, where: str
    ) -> None:
        if where != "test":
            return
        hang.disarm(test)
        recorder = test.data.get("budget.recorder")
        if recorder is not None:
            recorder.stop()
        clock = test.data.get("budget.clock")
        if clock is not None:
            clock.close()

    def phase_finished(self, test: TestCheck, phase: str) -> None:
        if phase != "call" or test.budget is None or "budget.start" not in test.data:
            return
        wall = _clock.perf_counter() - test.data.pop("budget.start")
        recorder = test.data.pop("budget.recorder", None)
        if recorder is not None:
            recorder.stop()  # the test may have failed before its task exited
            test.data["timeline"] = recorder  # for the outputs (see recording.py)
        clock = test.data.pop("budget.clock", None)
        virtual = None
        if clock is not None:
            clock.close()
            virtual = clock.elapsed
        fallback = test.data.pop("budget.fallback", None)
        if fallback is not None and fallback not in self._fallbacks_said:
            self._fallbacks_said.add(fallback)
            warn_at_item(test.item, f"asynccheck: {fallback}")
        measured = virtual if virtual is not None else wall
        factor = self.settings.wall_factor
        allowed = test.budget * factor
        test.item.user_properties.append(
            (
                BUDGET_PROPERTY,
                {
                    "clock": "virtual" if virtual is not None else "wall",
                    "wall": round(measured, 6),
                    "budget": test.budget,
                    "factor": factor,
                    "margin": round(allowed - measured, 6),
                },
            )
        )
        guard = hang.disarm(test, drop=True)
        if guard is not None and guard.fired:
            budget = _fmt(test.budget) + (f" x {factor:g}" if factor != 1 else "")
            test.add(guard.finding(budget, "virtual" if virtual is not None else "wall"))
        elif measured > allowed:
            test.add(self._finding(test, measured, allowed, recorder, virtual is not None, wall))

    def _finding(
        self,
        test: TestCheck,
        wall: float,
        allowed: float,
        recorder: Recorder | None,
        virtual: bool = False,
        real: float = 0.0,
    ) -> Finding:
        assert test.budget is not None
        factor = self.settings.wall_factor
        budget = _fmt(test.budget) + (f" x {factor:g} = {_fmt(allowed)}" if factor != 1 else "")
        lines: list[str] = []
        blocking = [f for f in test.findings if f.kind == Kind.BLOCKING.value]
        blocked = sum(f.total_duration for f in blocking)
        busy = 0.0
        if recorder is not None and not recorder.measures:
            recorder = None  # its idle time would read 0 and its timeline all running: unknown
        if recorder is not None:
            idle = min(recorder.idle, wall)
            busy = max(wall - idle - blocked, 0.0)
            lines.append(
                f"loop time: blocked {_fmt(blocked)}, running callbacks and task steps "
                f"{_fmt(busy)}, idle waiting on timers/I/O {_fmt(idle)}"
            )
        elif blocked:
            lines.append(f"loop time: blocked {_fmt(blocked)}")
        for finding in sorted(blocking, key=lambda f: -f.total_duration)[:5]:
            lines.append(
                f"  blocked {_fmt(finding.total_duration)} by {finding.call} at {finding.location}"
            )
        fix = "make the slow parts concurrent, or raise the budget if the work really grew"
        if recorder is not None:
            sequential = recorder.sequential_awaits(test.budget)
            if sequential:
                average = sum(s.idle for s in sequential) / len(sequential)
                lines.append(
                    f"{len(sequential)} awaits of about {_fmt(average)} ran one after another; "
                    "asyncio.gather them:"
                )
                lines.extend(f"  {s.where} for {_fmt(s.idle)}" for s in sequential)
                fix = "run the independent awaits concurrently with asyncio.gather(...)"
            elif blocked >= busy and blocked > 0:
                fix = "move the blocking calls off the loop (await asyncio.to_thread(...))"
            elif busy > 0.5 * wall:
                fix = (
                    "the loop was busy running code: move CPU-bound work off it "
                    "(await asyncio.to_thread(...) or a process pool) or make it cheaper"
                )
            lines.extend(recorder.render())
        elif blocked >= 0.5 * wall:
            fix = "move the blocking calls off the loop (await asyncio.to_thread(...))"
        return Finding(
            kind=Kind.MAX_WALL.value,
            message=(
                f"virtual time {_fmt(wall)} (real {_fmt(real)}) exceeded the max_wall budget "
                f"of {budget}"
                if virtual
                else f"wall time {_fmt(wall)} exceeded the max_wall budget of {budget}"
            ),
            file=self._file(test),
            line=self._line(test),
            function=getattr(test.item, "originalname", test.item.name),
            call="max_wall",
            fix=fix,
            stack=tuple(lines),
            duration=wall,
            extra={"wall": wall, "budget": test.budget, "factor": factor},
        )

    def _file(self, test: TestCheck) -> str:
        path, _, _ = test.item.location
        return path

    def _line(self, test: TestCheck) -> int:
        _, line, _ = test.item.location
        return (line or 0) + 1


def budget_detector(settings: Settings) -> Detector | None:
    if settings.severity(Kind.MAX_WALL) is Severity.OFF:
        return None
    return BudgetDetector(settings)
