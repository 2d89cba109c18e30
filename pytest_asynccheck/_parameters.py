"""Functions compiled with another function's own parameters, for the plugin's wrappers on a
hot path: a call that packs its arguments into a tuple and a dictionary, and unpacks them again
for the function beneath, costs several times one that passes them as they came
(benchmarks/README.md, "What each kind costs" and "Tasks noted by the loop class").

``compiled_with_parameters_of`` compiles such a function from a template. ``parameters_of``
reads the parameters (``inspect.signature``, not following ``__wrapped__``:
a wrapper put there before the session takes parameters of its own), and says what to declare
and what to pass on; a function whose parameters cannot be read (one in C) or that has no
first positional parameter gets everything, packed. Names starting ``_asynccheck_`` are the
compiled code's own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

#: What a wrapper declares and passes on when ``original``'s parameters cannot be read (a
#: function in C): everything, packed.
PACKED = (["self", "*args", "**kwargs"], ["self", "*args", "**kwargs"])


def parameters_of(original: Any, defaults: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What a function with ``original``'s parameters declares, and the arguments it passes on
    to it; their default values go into ``defaults``, by the names declared."""
    try:
        # The parameters the function itself takes: a wrapper put there before the session
        # names the function beneath in ``__wrapped__``, whose parameters may be others.
        parameters = list(inspect.signature(original, follow_wrapped=False).parameters.values())
    except (TypeError, ValueError):
        return PACKED
    if (
        not parameters
        or parameters[0].kind
        not in (parameters[0].POSITIONAL_ONLY, parameters[0].POSITIONAL_OR_KEYWORD)
        or any(p.name.startswith("_asynccheck_") for p in parameters)
    ):
        return PACKED  # no first parameter of its own (``*args``), or a name of ours
    declared, passed = [], []
    keyword_only = False
    for index, parameter in enumerate(parameters):
        name, kind = parameter.name, parameter.kind
        if kind is parameter.VAR_POSITIONAL:
            declared.append(f"*{name}")
            passed.append(f"*{name}")
            keyword_only = True
            continue
        if kind is parameter.VAR_KEYWORD:
            declared.append(f"**{name}")
            passed.append(f"**{name}")
            continue
        if kind is parameter.KEYWORD_ONLY and not keyword_only:
            declared.append("*")
            keyword_only = True
        text = name
        if parameter.default is not parameter.empty:
            defaults[f"_asynccheck_default_{index}"] = parameter.default
            text += f"=_asynccheck_default_{index}"
        declared.append(text)
        passed.append(f"{name}={name}" if kind is parameter.KEYWORD_ONLY else name)
        if kind is parameter.POSITIONAL_ONLY and (
            index + 1 == len(parameters) or parameters[index + 1].kind is not kind
        ):
            declared.append("/")
    return declared, passed


def compiled_with_parameters_of(
    original: Any, template: str, name: str, namespace: dict[str, Any], filename: str
) -> Callable[..., Any]:
    """The function ``name`` that ``template`` defines, with ``{declared}`` in its template
    replaced by ``original``'s parameters, ``{passed}`` by the arguments passed on to it and
    ``{first}`` by the first of them. ``namespace`` is its globals (the default values go there
    too); it is compiled as code of ``filename``, so its frames are that module's wherever
    frames are told apart."""
    declared, passed = parameters_of(original, namespace)
    source = template.format(
        declared=", ".join(declared), passed=", ".join(passed), first=passed[0]
    )
    exec(compile(source, filename, "exec"), namespace)
    function: Callable[..., Any] = namespace[name]
    return function
