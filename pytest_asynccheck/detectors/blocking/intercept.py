"""Known blocking calls, intercepted at the call while a check session runs.

Interception replaces each catalogued callable on its module or class, and also rebinds every
alias of it found in the globals of loaded modules (``from time import sleep as nap``), so how
the name was imported does not matter. Everything is put back when the session ends: the
aliases install and later imports rebound (each by its key, where it still holds the wrapper),
the wrappers modules loaded since install took by importing, and those the plugin's modules
keep beneath their own patches. (Another module loaded before the session that binds a
catalogued call to a global of its own while the session runs, in a function's ``global``
import, keeps the wrapper, which passes every call straight through once the session is over:
finding that would mean reading every loaded module again at the end.)

Each callable is replaced by a wrapper (``wrappers.py``, where the cost of a call that is not
checked is stated); the call itself always proceeds unchanged, so nothing is raised into the
code under test.

Socket methods (``connect``, ``accept``, ``recv*``, ``send*``) are set on the Python class
``socket.socket`` itself, over the C methods it inherits (and put back, or deleted, at the end).
A socket therefore keeps its exact type, which trio requires (it refuses any socket whose type
is not ``socket.socket``), and every socket is checked: made before the session, by a user
subclass, or adopted from a file descriptor. The wrapper's first test is ``getblocking()``, a C
call: the non-blocking sockets of asyncio and trio go straight to the C method after it (about
0.1 µs per call). Moving blocking sockets into a checked subclass cost those nothing but broke
trio; an audit hook sees no socket reads or writes and can never be removed.

Not intercepted (the watchdog still reports them when they hold the loop past the stall
threshold): ``threading.Lock``/``RLock`` acquires (immutable C types), reads and writes on
file objects that are already open (C types; the ``open`` is caught), ``os.stat`` and friends,
and ``select.poll``/``epoll`` objects. A nested loop started through ``nest_asyncio`` replaces
the patched ``run_until_complete`` on the loop's own class, so only unpatched asyncio's nested
``asyncio.run``/``run_until_complete`` (which also raise ``RuntimeError``) are reported.
"""

from __future__ import annotations

import logging
import operator
import sys
import types
from collections.abc import Iterable, Iterator
from itertools import compress, repeat
from typing import TYPE_CHECKING, Any

from ... import _frames as frames
from ..._findings import Finding, Kind
from ..._frames import Origin
from ..._session import DISPATCH_CODES
from . import loopthread
from .allow import AllowRules
from .catalogue import CATALOGUE, Blocker, _awaited, _target, trio_fix
from .chain import Call, _library_frames, _qualified_names, chain
from .wrappers import OWN_PARAMETERS, _wrap, _wrap_sqlite_connect, _wrap_with_own_parameters

if TYPE_CHECKING:
    from ..._session import CheckSession, TestCheck

LOGGER = logging.getLogger("pytest_asynccheck")


#: Classes that keep their own reference to a catalogued function, taken at import (a class
#: attribute, or a ``staticmethod`` around it), which rebinding module globals cannot reach:
#: pathlib's listings on Python 3.10 (``_NormalAccessor``) and 3.13 (glob's ``_StringGlobber``).
_HOLDERS = (("pathlib", "_NormalAccessor"), ("glob", "_StringGlobber"))

#: The plugin's own modules keep the originals they call (``_clock``, the wrappers), so no
#: alias in them is rebound.
_OWN = "pytest_asynccheck"
#: The plugin's modules that put their own patch on top of a catalogued call's wrapper and
#: keep the wrapper beneath in a global (``open``): the only ones of its modules searched at
#: uninstall, by name, as reading every one of them cost a million instructions a run.
_OWN_HOLDERS = ("pytest_asynccheck.detectors.resource_patches",)


def _keys_of(namespace: dict[str, Any], ids: dict[int, Any]) -> list[str]:
    """The keys of ``namespace`` whose values' ids are in ``ids``, found in C (a module's
    keys and values come in the same order): this runs over every global of the modules
    that hold a patched function."""
    return list(compress(namespace, map(ids.__contains__, map(id, namespace.values()))))


def _loaded_since(loaded: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """The names in ``loaded`` (a copy of ``sys.modules``) not bound to the same module in
    ``before`` (an earlier copy), found in C: a module loaded again under the same name is
    another module."""
    if not before:
        return list(loaded)
    return list(compress(loaded, map(operator.is_not, loaded.values(), map(before.get, loaded))))


def _namespaces(modules: Iterable[object]) -> list[dict[str, Any]]:
    """The ``__dict__`` of each of ``modules`` that has one, found in C."""
    found: list[Any] = list(map(getattr, modules, repeat("__dict__"), repeat(None)))
    return list(compress(found, map(isinstance, found, repeat(dict))))


def _holding(
    namespaces: list[dict[str, Any]], ids: dict[int, Any]
) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """Each of ``namespaces`` that binds an object whose id is in ``ids``, with the names
    that do.

    This runs over every loaded module at install, and most hold none: the namespaces that
    do are picked out by one chain of C iterators (no bytecode per module), and one by one
    only if a namespace changed under it (another thread importing)."""
    wanted = set(ids)  # a set's isdisjoint reads an iterator in fewer steps than a view's
    try:
        disjoint = map(wanted.isdisjoint, map(map, repeat(id), map(dict.values, namespaces)))
        holders = list(compress(namespaces, map(operator.not_, disjoint)))
    except RuntimeError:
        holders = namespaces
    for namespace in holders:
        try:
            hits = _keys_of(namespace, ids)
        except RuntimeError:
            continue
        if hits:
            yield namespace, hits


class Interceptor:
    """Installs the catalogue's wrappers for one check session and removes them again."""

    def __init__(self, session: CheckSession, allow: tuple[str, ...] = ()) -> None:
        self.session = session
        self.rules = AllowRules(allow)
        self.allowed_names = self.rules.calls
        self.allowed_modules = self.rules.modules
        #: Each test's marker entries, parsed once per distinct set.
        self._test_rules: dict[frozenset[str], AllowRules] = {}
        #: (owner, attribute, had its own attribute, previous value)
        self._patches: list[tuple[Any, str, bool, Any]] = []
        #: id(original) -> (original, wrapper) for module-level functions (aliases rebound).
        self._functions: dict[int, tuple[Any, Any]] = {}
        #: id(wrapper) -> (wrapper, original), for everything this interceptor installed.
        self._wrappers: dict[int, tuple[Any, Any]] = {}
        self._pending: list[Blocker] = []
        self._pending_modules: frozenset[str] = frozenset()
        self._pending_holders: list[tuple[str, str]] = []
        #: ``sys.modules`` as it was at the last scan for aliases, and at the scan of install:
        #: a module loaded since may hold a wrapper at uninstall.
        self._scanned: dict[str, Any] = {}
        self._at_install: dict[str, Any] = {}
        #: (namespace, key, wrapper, original) of each alias pointed at a wrapper: put back by
        #: key at uninstall, where still the wrapper, with no search of the namespace.
        self._rebound: list[tuple[dict[str, Any], str, Any, Any]] = []
        self.installed = False

    # installing

    def install(self) -> None:
        self.installed = True
        # Calls allowed by name stay patched, so the watchdog knows them and stays quiet too.
        self._pending = list(CATALOGUE)
        self._pending_holders = list(_HOLDERS)
        self._patch_ready()
        self._at_install = self._scanned or dict(sys.modules)

    def refresh(self, test: object = None) -> None:
        """Patch entries whose module has been imported since the last call (at each test's
        start: ``test`` is the blocking detector's ``test_started`` argument)."""
        if any(map(sys.modules.__contains__, self._pending_modules)):
            self._patch_ready()

    def _patch_ready(self) -> None:
        modules = sys.modules
        ready: list[Blocker] = []
        pending: list[Blocker] = []
        awaited: set[str] = set()
        for blocker in self._pending:
            module = _awaited(blocker.name)
            if module in modules:
                ready.append(blocker)
            else:
                pending.append(blocker)
                awaited.add(module)
        self._pending = pending
        new: dict[int, Any] = {}
        for blocker in ready:
            try:
                new.update(self._patch(blocker))
            except Exception as exc:  # an attribute missing on this platform or version
                LOGGER.debug("asynccheck: cannot intercept %s: %s", blocker.name, exc)
        if new:
            self._rebind_aliases(new)
        self._patch_holders()
        awaited.update(module for module, _class in self._pending_holders)
        self._pending_modules = frozenset(awaited)

    def _patch_holders(self) -> None:
        """Point the ``_HOLDERS`` classes' own references to patched functions at the
        wrappers, as static methods (a plain function there would be bound to the instance)."""
        pending = []
        for module_name, class_name in self._pending_holders:
            module = sys.modules.get(module_name)
            if module is None:
                pending.append((module_name, class_name))
                continue
            holder = getattr(module, class_name, None)
            if not isinstance(holder, type):
                continue  # not on this Python version
            for attribute, value in list(vars(holder).items()):
                function = value.__func__ if isinstance(value, staticmethod) else value
                known = self._functions.get(id(function))
                if known is None or known[0] is not function:
                    continue
                replacement = staticmethod(known[1])
                self._patches.append((holder, attribute, True, value))
                setattr(holder, attribute, replacement)
                self._wrappers[id(replacement)] = (replacement, value)
        self._pending_holders = pending

    def _patch(self, blocker: Blocker) -> dict[int, Any]:
        module_name, path = _target(blocker.name)
        module = sys.modules[module_name]
        *owner_path, attribute = path.split(".")
        owner: Any = module
        for part in owner_path:
            owner = getattr(owner, part)
        if blocker.name.startswith(("sqlite3.Connection.", "sqlite3.Cursor.")):
            return {}  # checked through the Connection subclass that sqlite3.connect returns
        original = getattr(owner, attribute)
        if isinstance(owner, type):
            original = owner.__dict__.get(attribute, original)
            if isinstance(original, (staticmethod, classmethod)):
                return {}
        if blocker.name == "sqlite3.connect":
            wrapper = _wrap_sqlite_connect(self, blocker, original)
        elif blocker.name in OWN_PARAMETERS:
            wrapper = _wrap_with_own_parameters(self, blocker, original)
        else:
            wrapper = _wrap(self, blocker, original)
        had_own = attribute in vars(owner)
        self._patches.append((owner, attribute, had_own, vars(owner).get(attribute)))
        setattr(owner, attribute, wrapper)
        self._wrappers[id(wrapper)] = (wrapper, original)
        if isinstance(owner, types.ModuleType):
            self._functions[id(original)] = (original, wrapper)
            return {id(original): wrapper}
        return {}

    def _rebind_aliases(self, replacements: dict[int, Any]) -> None:
        """Point every module global bound to a patched original at its wrapper.

        ``replacements`` are the functions of modules imported since the last scan, so only
        modules that were not loaded (under that name) at the last scan can hold them."""
        loaded = dict(sys.modules)
        names = _loaded_since(loaded, self._scanned)
        self._scanned = loaded
        names = list(compress(names, map(operator.not_, map(str.startswith, names, repeat(_OWN)))))
        modules = list(map(loaded.__getitem__, names))
        modules = list(compress(modules, map(isinstance, modules, repeat(types.ModuleType))))
        for namespace, hits in _holding(_namespaces(modules), replacements):
            for key in hits:
                value = namespace[key]
                wrapper = replacements.get(id(value))
                if wrapper is not None and self._functions.get(id(value), (None,))[0] is value:
                    namespace[key] = wrapper
                    self._rebound.append((namespace, key, wrapper, value))

    # removing

    def uninstall(self) -> None:
        if not self.installed:
            return
        self.installed = False
        for owner, attribute, had_own, previous in reversed(self._patches):
            current = vars(owner).get(attribute)
            if current is None or id(current) not in self._wrappers:
                continue  # replaced by someone else since (nest_asyncio, a mock): leave it
            if had_own:
                setattr(owner, attribute, previous)
            else:
                delattr(owner, attribute)
        # A wrapper is held where install or a refresh rebound an alias (put back by key), by a
        # module loaded since install (``from time import sleep`` then binds the wrapper), or by
        # the plugin's modules that patch the same call on top (they keep the one beneath):
        # those two are searched.
        for namespace, key, wrapper, original in reversed(self._rebound):
            if namespace.get(key) is wrapper:
                namespace[key] = original
        originals = {key: original for key, (_wrapper, original) in self._wrappers.items()}
        loaded = dict(sys.modules)
        names = _loaded_since(loaded, self._at_install)
        names += (name for name in _OWN_HOLDERS if name in loaded)
        for namespace, hits in _holding(_namespaces(map(loaded.__getitem__, names)), originals):
            for key in hits:
                namespace[key] = originals[id(namespace[key])]
        self._patches.clear()
        self._functions.clear()
        self._wrappers.clear()
        self._pending.clear()
        self._pending_modules = frozenset()
        self._pending_holders = []
        self._scanned = {}
        self._at_install = {}
        self._rebound = []

    # the slow path: a catalogued call on a running loop's thread

    def exempt(self, caller: types.FrameType | None) -> bool:
        """Whether a call made from ``caller`` is the machinery's, the plugin's, coverage's,
        an import's, or from a module the ini allows."""
        first = True
        decided = False
        for frame in frames.walk(caller):
            if frame.f_code in DISPATCH_CODES:
                return True  # inside a detector's event: the plugin's (or an extension's) work
            origin = frames.origin(frame.f_code.co_filename)
            if origin is Origin.FROZEN:
                return True
            if first:
                first = False
                if origin is Origin.MACHINERY:
                    return True
            if not decided and origin is Origin.MACHINERY:
                decided = True  # reached the loop itself: a callback, not the plugin's code
            elif not decided and origin is not Origin.STDLIB:
                if origin in (Origin.PLUGIN, Origin.COVERAGE):
                    return True
                if self.allowed_modules:
                    module = frame.f_globals.get("__name__", "")
                    if isinstance(module, str) and module.startswith(self.allowed_modules):
                        return True
                decided = origin is Origin.USER
        return False

    def record(
        self, blocker: Blocker, caller: types.FrameType | None, started: float, ended: float
    ) -> None:
        session = self.session
        root = session.rootpath
        test = session.current
        stack = list(frames.walk(caller))
        user = frames.user_frame(stack)
        library = _library_frames(stack, user)
        duration = ended - started
        if user is not None:
            file = frames.relpath(user.f_code.co_filename, root)
            line = user.f_lineno
            function = user.f_code.co_name
        else:  # called straight from the loop (``call_soon(time.sleep, 1)``): name the test
            path, lineno, _name = test.item.location if test is not None else ("", None, "")
            file, line = path, (lineno or 0) + 1 if lineno is not None else 0
            function = "<loop callback>"
        qualified = [_qualified_names(frame) for frame in library]
        call = Call(
            blocker.name,
            tuple(public for public, _own in qualified),
            tuple(own for _public, own in qualified),
            tuple(str(f.f_globals.get("__name__", "")) for f in library),
            file,
            stack,
        )
        del stack, library
        try:
            if self.rules.allows(call) or (test is not None and self._rules_of(test).allows(call)):
                return
        finally:
            call.stack = []
        via = f"{call.via[0]} -> " if call.via else ""
        finding = Finding(
            kind=Kind.BLOCKING.value,
            message=(
                f"blocking call {via}{blocker.name}() held the event loop for "
                f"{duration * 1000:.1f} ms: it {blocker.why}"
            ),
            file=file,
            line=line,
            function=function,
            call=blocker.name,
            fix=blocker.fix if loopthread.foreign_loop_thread is None else trio_fix(blocker.fix),
            stack=chain(caller, root, test),
            duration=duration,
            extra={"via": list(call.via)} if call.via else {},
        )
        session.report(finding)

    def _rules_of(self, test: TestCheck) -> AllowRules:
        rules = self._test_rules.get(test.allow)
        if rules is None:
            rules = self._test_rules[test.allow] = AllowRules(test.allow)
        return rules
