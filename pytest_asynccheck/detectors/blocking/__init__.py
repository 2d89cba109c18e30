"""Kind ``blocking``: the catalogue of blocking calls, their interception on the loop
thread, the state shared per thread, and the watchdog that sees every other stall."""
