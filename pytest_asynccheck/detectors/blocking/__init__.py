"""Kind ``blocking``: the catalogue of blocking calls, their interception on the loop
thread, the state shared per thread, and the watchdog that sees every other stall.

``catalogue`` (the calls, as data), ``nonblocking`` (the predicates that tell a call that
cannot block), ``allow`` (allow entries), ``chain`` (the way from the user's line to the call),
``wrappers`` (what replaces each call: the hot path), ``intercept`` (installing and removing the
wrappers, recording a finding), ``loopthread`` (the state interception and the watchdog share,
and ``allow_blocking``), ``watchdog`` (the heartbeat thread), ``stalls`` (what its looks at a
stuck loop find, and the stall they make) and ``stuck`` (what is read of a stuck loop thread),
``detector`` (the detector that runs them for a check session)."""
