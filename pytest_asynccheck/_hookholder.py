"""``HookHolder``: the base of the objects the plugin registers with pytest, whose ``dir()``
lists their hooks and nothing else.

pytest reads every attribute that ``dir()`` lists of a registered object, once for hooks
(pluggy) and once for fixtures (``FixtureManager.parsefactories``, which on pytest 9 also
unwraps each one, looking for a fixture behind a decorator); an instance lists about 30
names, most of them ``object``'s own. A holder lists only its ``pytest_*`` attributes, and is
read for nothing else: it defines no fixture, and no attribute of it is a hook that does not
start with ``pytest_``. ``vars()`` and attribute access are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import compress, repeat

#: Each holder class's hook names, listed once.
_HOOKS: dict[type, tuple[str, ...]] = {}


class HookHolder:
    """A plugin object: ``dir()`` of an instance is its class's hooks."""

    __slots__ = ()

    def __dir__(self) -> Iterable[str]:
        cls = type(self)
        hooks = _HOOKS.get(cls)
        if hooks is None:
            names = type.__dir__(cls)
            hooks = _HOOKS[cls] = tuple(
                compress(names, map(str.startswith, names, repeat("pytest_")))
            )
        return hooks
