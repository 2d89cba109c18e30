"""``--asynccheck-trace=DIR``: one Chrome trace-event JSON file per failing or budgeted async
test, which Perfetto's UI (ui.perfetto.dev), ``chrome://tracing`` and speedscope open.

The file (``{"traceEvents": [...]}``, times in microseconds from the test's setup) has one
process, the test, and these tracks (``tid``): 1, the test's phases (``setup``, ``call``,
``teardown``) and an instant event per finding; 2, the event loop, with a slice per blocked
call and stall (its call and file:line in ``args``); 3 and up, one per task (the test's own
first), with a slice per stretch ``running or ready`` or ``waiting on timers or I/O``. Every
slice is a complete event (``ph: "X"`` with ``dur``), and the events of each track are written
in time order. The task tracks come from ``timeline.Recorder``: a loop with a selector only.
Under the virtual clock the task tracks are in virtual time, so they may run past the real call.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import TestRecord

PID = 1
PHASES_TID = 1
LOOP_TID = 2
FIRST_TASK_TID = 3
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_STATE_NAMES = {"running": "running or ready", "waiting": "waiting on timers or I/O"}


def file_name(nodeid: str) -> str:
    """A file name for the test, readable and unique per node id."""
    return _UNSAFE.sub("_", nodeid).strip("_")[:180] + ".trace.json"


def _us(seconds: float) -> float:
    return round(seconds * 1_000_000, 3)


def _meta(tid: int, name: str, what: str = "thread_name") -> dict[str, Any]:
    return {"ph": "M", "name": what, "pid": PID, "tid": tid, "ts": 0, "args": {"name": name}}


def _slice(tid: int, name: str, start: float, duration: float, **args: Any) -> dict[str, Any]:
    event = {"ph": "X", "name": name, "pid": PID, "tid": tid, "ts": _us(start)}
    event["dur"] = _us(max(duration, 0.0))
    if args:
        event["args"] = args
    return event


def events(record: TestRecord) -> list[dict[str, Any]]:
    """The trace events of one test."""
    origin = min((start for _, start, _, _ in record.phases if start), default=0.0)
    found: list[dict[str, Any]] = [
        _meta(0, record.nodeid, "process_name"),
        _meta(PHASES_TID, "test phases"),
        _meta(LOOP_TID, "event loop (blocked calls and stalls)"),
    ]
    tracks: dict[int, list[dict[str, Any]]] = {PHASES_TID: [], LOOP_TID: []}
    call_start = 0.0
    phase_end = {}
    for phase, start, duration, outcome in record.phases:
        at = start - origin if start else 0.0
        if phase == "call":
            call_start = at
        phase_end[phase] = at + duration
        tracks[PHASES_TID].append(_slice(PHASES_TID, phase, at, duration, outcome=outcome))
    for finding in record.findings:
        at = phase_end.get(finding.get("phase", ""), 0.0)
        tracks[PHASES_TID].append(
            {
                "ph": "i",
                "s": "t",
                "name": f"{finding['kind']}: {finding.get('call') or finding['message'][:60]}",
                "pid": PID,
                "tid": PHASES_TID,
                "ts": _us(at),
                "args": {
                    "message": finding["message"],
                    "where": f"{finding.get('file', '')}:{finding.get('line', 0)}",
                    "fix": finding.get("fix", ""),
                    "severity": finding.get("severity", ""),
                },
            }
        )
    timeline = record.timeline
    if timeline is not None:
        for span in timeline["blocked"]:
            tracks[LOOP_TID].append(
                _slice(
                    LOOP_TID,
                    f"{span['what']}: {span['call']}",
                    call_start + span["start"],
                    span["end"] - span["start"],
                    call=span["call"],
                    where=span["where"],
                    clock=timeline["clock"],
                )
            )
        for index, lane in enumerate(timeline["lanes"]):
            tid = FIRST_TASK_TID + index
            found.append(_meta(tid, f"task {lane['name']}"))
            tracks[tid] = [
                _slice(tid, _STATE_NAMES[state], call_start + start, end - start)
                for start, end, state in lane["spans"]
            ]
    for track in tracks.values():
        found.extend(sorted(track, key=lambda e: (e["ts"], e["ph"] != "X")))
    return found


def write(directory: str, record: TestRecord) -> Path:
    target = Path(directory) / file_name(record.nodeid)
    data = {"traceEvents": events(record), "displayTimeUnit": "ms"}
    target.write_text(json.dumps(data, indent=None) + "\n", encoding="utf-8")
    return target
