"""``--asynccheck-suggest-budgets``: a ``max_wall`` budget for each async test that has none,
from its measured call phase.

The rule: the measured time (virtual seconds under ``--asynccheck-clock=virtual``, else wall
seconds) times the headroom (1.5 for wall time, which varies from run to run; 1.1 for virtual
time, which does not), divided by ``--asynccheck-wall-factor`` (budgets are multiplied by it
when checked, so the suggestion passes on this machine with this factor), rounded up to two
significant digits, and at least 10 ms. Only tests whose call phase passed get a suggestion.
When the test's own awaits ran one after another (``Recorder.sequential_awaits``), the
suggestion says so: gathered, they would take about the longest of them.
"""

from __future__ import annotations

import math
from typing import Any

WALL_HEADROOM = 1.5
VIRTUAL_HEADROOM = 1.1
MINIMUM = 0.01


def round_up(seconds: float) -> float:
    """``seconds`` rounded up to two significant digits."""
    if seconds <= MINIMUM:
        return MINIMUM
    scale = 10 ** (math.floor(math.log10(seconds)) - 1)
    # Within a thousandth of a step is the step: 2.0000001 x 1.1 is 2.2, not 2.3.
    return float(round(math.ceil(round(seconds / scale, 3)) * scale, 10))


def suggestion(nodeid: str, measure: dict[str, Any], factor: float) -> dict[str, Any]:
    """The suggested budget of one test, as it goes into the JSON report."""
    virtual = measure["clock"] == "virtual"
    headroom = VIRTUAL_HEADROOM if virtual else WALL_HEADROOM
    budget = round_up(measure["seconds"] * headroom / factor)
    marker = f"@pytest.mark.max_wall({budget:g}" + (', clock="virtual")' if virtual else ")")
    sequential = measure.get("sequential") or []
    return {
        "nodeid": nodeid,
        "clock": measure["clock"],
        "measured": measure["seconds"],
        "suggested": budget,
        "marker": marker,
        "sequential_awaits": [
            {"where": s["where"], "seconds": round(s["idle"], 6)} for s in sequential
        ],
    }


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def lines(suggestions: list[dict[str, Any]], factor: float) -> list[str]:
    """The terminal section's lines."""
    if not suggestions:
        return ["no async test without a budget passed: nothing to suggest"]
    rule = f"measured x {WALL_HEADROOM:g} (virtual time: x {VIRTUAL_HEADROOM:g})"
    if factor != 1:
        rule += f" / wall factor {factor:g}"
    found = [f"budgets suggested from this run ({rule}, rounded up):"]
    for entry in sorted(suggestions, key=lambda s: s["nodeid"]):
        clock = " virtual" if entry["clock"] == "virtual" else ""
        found.append(
            f"{entry['marker']}  {entry['nodeid']}  (measured{clock} {_fmt(entry['measured'])})"
        )
        sequential = entry["sequential_awaits"]
        if sequential:
            longest = max(s["seconds"] for s in sequential)
            found.append(
                f"    {len(sequential)} awaits ran one after another; gathered "
                f"(asyncio.gather) they would take about {_fmt(longest)}:"
            )
            found.extend(f"      {s['where']} for {_fmt(s['seconds'])}" for s in sequential)
    return found
