"""The names under which findings, budgets and recordings leave a test: the attributes of its
reports, its ``user_properties`` entries, and a pytest-xdist worker's ``workeroutput`` keys.

They are a format shared by the modules that write them (the session, the detectors, the
recording of the outputs) and those that read them (the reporting), which sit above and below
each other: the names live here, below both.
"""

from __future__ import annotations

#: Findings go on each phase's report under this attribute, on reports that have some.
REPORT_ATTR = "asynccheck_findings"
#: The pytest-xdist ``workeroutput`` keys of a worker's late findings and of how many tests it
#: checked (a count once per worker, rather than a flag on every test's report).
LATE_OUTPUT = "asynccheck_late"
CHECKED_OUTPUT = "asynccheck_checked"
#: A ``user_properties`` entry per finding: ``kind severity file:line message``.
FINDING_PROPERTY = "asynccheck_finding"
#: The ``user_properties`` entry of a budgeted test: wall time, budget, factor, margin.
BUDGET_PROPERTY = "asynccheck_wall"
#: What the outputs recorded of a test's call phase, on that phase's report.
TIMELINE_ATTR = "asynccheck_timeline"
MEASURE_ATTR = "asynccheck_measure"
