"""The asyncio tutorial's programs, runnable offline, as the targets pytest-asynccheck is shown on.

Every program has a ``main()`` that runs it as the tutorial does and a ``scale`` that shrinks
its delays (``scale=0.1`` turns the tutorial's 2-second download into 0.2 s) for tests.
"""
