"""Builds from the table in ``fastopt._specs`` what each public entry point
needs besides its maths: the parameter list of its docstring and, for kernels
with a native fast path, the fast path's pre-check (docs/design-validation.md).

The pre-check is generated source, compiled once at import: a wrapper with the
entry point's own signature whose first statement is the table's conditions
written out inline (``type(lr) is float and 0.0 <= lr < _INF and ...``), then
the native call. A call costs exactly what the hand-written pre-checks cost;
anything that is not plainly valid (ints where floats are expected, numpy
scalars, NaN, inf, missing arrays...) goes to the validated function, which
raises the precise error.
"""
from __future__ import annotations

import dataclasses
import inspect
import linecache

from fastopt import _specs


def _bound(x):
    return "_INF" if x == float("inf") else "-_INF" if x == -float("inf") else repr(x)


def kind_test(kind, name):
    """A conservative inline test that ``name`` is a plainly valid value of ``kind``
    (exact float/int/bool/str; infinite values never plainly valid), or None."""
    if kind.optional:
        if kind.type == "scale":    # an array or a float: the validated path reads it
            return f"{name} is None"
        return f"({name} is None or {kind_test(dataclasses.replace(kind, optional=False), name)})"
    if kind.type == "bool":   # the two bool objects: cheaper than type(x) is bool
        return f"({name} is False or {name} is True)"
    if kind.type == "str":
        return f"type({name}) is str"
    if kind.type == "real":
        low = f"{_bound(kind.low)} {'<' if kind.low_open or kind.low == -float('inf') else '<='} "
        high = f" {'<' if kind.high_open or kind.high == float('inf') else '<='} {_bound(kind.high)}"
        return f"type({name}) is float and {low}{name}{high}"
    if kind.type == "int":
        test = f"type({name}) is int and {name} >= {kind.low!r}"
        if kind.high != float("inf"):
            test += f" and {name} {'<' if kind.high_open else '<='} {kind.high!r}"
        return test
    return None


def _default_name(h):
    return f"_D_{h.name}"


def _shortcut(h):
    """True when ``h``'s test may first ask whether the value is the signature's default
    object itself: a float default that passes its own test. Most calls leave most
    options at their defaults, and one ``is`` costs a third of a type and range test
    (benchmarks/RESULTS.md, "Session 19")."""
    return type(h.default) is float and h.kind.type == "real"


def precheck_scope(spec):
    """The names the pre-check of ``spec`` reads besides the call's arguments."""
    return {"_INF": float("inf"), "_ZERO": 0,
            **{_default_name(h): h.default for h in spec.hypers if _shortcut(h)}}


def _hyper_tests(spec):
    tests = [h.plain or kind_test(h.kind, h.name) for h in spec.hypers]
    if None in tests:
        raise ValueError(f"{spec.name} has a parameter without a fast pre-check")
    return tests


def _check_default(spec, h, test, value):
    """A shortcut default must pass the test it skips."""
    if not eval(test, {"_INF": float("inf")}, {h.name: value}):
        raise ValueError(f"{spec.name}: the default {value!r} of {h.name} fails its pre-check")


def plain_expr(spec, defaults=None):
    """The whole pre-check of ``spec``: every hyper-parameter plainly valid, every
    rule holds, every array an option requires is there. It reads the names of
    :func:`precheck_scope`; ``defaults`` (name -> value, else the table's) are the
    objects its shortcuts name, each checked to pass the test it skips."""
    tests = _hyper_tests(spec)
    for i, h in enumerate(spec.hypers):
        if _shortcut(h):
            _check_default(spec, h, tests[i], h.default if defaults is None else defaults[h.name])
            tests[i] = f"({h.name} is {_default_name(h)} or {tests[i]})"
    tests += [f"({r.expr})" for r in spec.rules if r.plain]
    tests += [f"({r.when.off} or {r.name} is not None)" for r in spec.arrays if r.when]
    # mixed-precision arrays (a master copy, found_inf) always take the validated path
    tests += [f"{r.name} is None" for r in spec.arrays if r.precision == "master" or r.dtype == "flag"]
    return "\n            and ".join(tests)


def _role_doc(r):
    what = {True: "updated in place", False: "read"}.get(r.written, f"updated in place when {r.written}")
    form = {"bits": "bit-packed uint8 mask", "flag": "1-element float32 array"}.get(
        r.dtype, "float32 array or list of arrays" if r.precision == "master"
        else "array or list of arrays")
    text = f"{r.name}: {form}, {what}"
    if r.when is not None:
        text += f"; required when {r.when.text}, else ignored"
    elif r.optional:
        text += "; optional (None)"
    return text


def _hyper_doc(h):
    kind = h.kind
    text = {"real": "real", "int": "int", "bool": "bool", "shape": "shape"}.get(kind.type, "")
    text = "" if kind.optional else text   # the rule says "None or ..."
    if kind.rule:
        text += f", {kind.rule}" if text else kind.rule
    text += "; required" if h.default is _specs.REQUIRED else f"; default {h.default!r}"
    return f"{h.name}: {text}"


def parameters_doc(spec):
    """The "Parameters" block of ``spec``'s docstring."""
    lines = [_role_doc(r) for r in spec.arrays] + [_hyper_doc(h) for h in spec.hypers]
    lines += [f"rule: {r.expr}  ({r.message})" for r in spec.rules]
    if spec.returns:
        lines.append(f"returns {spec.returns}")
    return "Parameters (from ``fastopt._specs``)::\n\n" + "\n".join("    " + x for x in lines)


def _document(fn, spec):
    fn.__doc__ = inspect.cleandoc(fn.__doc__ or "") + "\n\n" + parameters_doc(spec)
    return fn


# Kernels with a numba fast path (fastopt/backends/numba/_fast.py, whose FAST
# table holds one function per name; tests/test_numba_fast.py checks both agree).
NUMBA_FAST = frozenset({"sgd_step", "rmsprop_step", "adam_step", "adagrad_step", "ema_update",
                        "dropout_forward", "dropout_backward", "clip_grad_norm", "grad_norm",
                        "batch_norm_forward", "batch_norm_backward"})


def _auto_numba():
    """True when ``backend="auto"`` selects numba for CPU arrays (the cpp backend not built)."""
    from fastopt import backends
    try:
        return backends.choose("auto", False) == "numba"
    except ValueError:   # a bad FASTOPT_BACKEND: the validated path raises it
        return False


def _numba_leg(name, declined):
    """A one-element list holding the numba fast function of kernel ``name``: first
    a resolver that imports fastopt/backends/numba/_fast.py on the first call that
    selects numba (``import fastopt`` never imports numba), then the function
    itself (or one returning ``declined`` when numba is unavailable)."""
    cell = []

    def resolve(*args):
        from fastopt import backends
        fn = lambda *a: declined   # noqa: E731
        if backends.unavailable_reason("numba") is None:
            from fastopt.backends.numba import _fast
            fn = _fast.FAST[name]
        cell[0] = fn
        return fn(*args)
    cell.append(resolve)
    return cell


def entry(name, native=None, native_args=None, returns_result=False):
    """Decorator of the public entry point of kernel ``name``: appends its
    parameter list to the docstring and, when ``native`` is given (the name of
    a module global holding a ``_core.*_fast`` function, or None when the
    extension is not built), puts in front the generated pre-check and
    ``native(native_args)`` (source text over the parameter names and the
    module's globals). ``native`` returns False (None when ``returns_result``)
    for a call it declines; then the decorated function validates and runs it."""
    spec = _specs.KERNELS[name]

    def wrap(fn):
        _document(fn, spec)
        numba = name in NUMBA_FAST
        if native is None and not numba:
            return fn
        sig = inspect.signature(fn)
        defaults = {p.name: p.default for p in sig.parameters.values()}
        params, forward, seen_star = [], [], False
        for p in sig.parameters.values():
            if p.kind is p.KEYWORD_ONLY and not seen_star:
                params.append("*")
                seen_star = True
            params.append(p.name if p.default is p.empty else f"{p.name}=_defaults[{p.name!r}]")
            forward.append(p.name if p.kind is p.POSITIONAL_OR_KEYWORD else f"{p.name}={p.name}")
        # `native` is looked up in the module's globals on every call, as the
        # hand-written checks did (tests switch the fast path off by setting it to None).
        # The numba leg (fastopt/backends/numba/_fast.py) takes the native arguments,
        # or without a native fast path the entry point's own, in order.
        args = native_args if native else ", ".join(sig.parameters)
        legs = [f"{native} is not None and {native}({native_args})"] if native else []
        if native and numba:   # the native fast path declines backend="numba": skip its call
            legs[0] = f"backend != 'numba' and {legs[0]}"
        if numba:
            legs.append(f"(backend == 'numba' or backend == 'auto' and _auto_numba())\n"
                        f"                and _numba[0]({args})")
        result = returns_result or bool(spec.returns)
        if result:
            head = (f"    if ({plain_expr(spec, defaults)}):\n"
                    + "".join(f"        _out = ({leg})\n        if _out is not None and _out is not "
                              f"False:\n            return _out\n" for leg in legs))
        else:
            head = (f"    if ({plain_expr(spec, defaults)}\n            and ("
                    + "\n                 or ".join(f"({leg})" for leg in legs) + ")):\n"
                    f"        return\n")
        # the signature's default objects, which the pre-check's shortcuts name
        shortcuts = "".join(f"  {_default_name(h)} = _defaults[{h.name!r}]\n"
                            for h in spec.hypers if _shortcut(h))
        src = (f"def _make(_validated, _defaults, _INF, _ZERO, _numba, _auto_numba):\n"
               + shortcuts +
               f"  def {fn.__name__}({', '.join(params)}):\n"
               + "".join("  " + line + "\n" for line in head.splitlines())
               + f"      return _validated({', '.join(forward)})\n"
               f"  return {fn.__name__}\n")
        filename = f"<fastopt._entry: {fn.__module__}.{fn.__name__}>"
        linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        scope = {}
        exec(compile(src, filename, "exec"), fn.__globals__, scope)
        public = scope["_make"](fn, defaults, float("inf"), 0, _numba_leg(name, None if result
                                                                         else False), _auto_numba)
        public.__doc__, public.__module__ = fn.__doc__, fn.__module__
        public.__qualname__, public.__wrapped__ = fn.__qualname__, fn
        public.source = src   # for readers: print(fastopt.adam_step.source)
        return public

    return wrap
