"""What every kernel accepts, stated once (docs/design-validation.md).

One :class:`Kernel` entry per public kernel: its hyper-parameters (name, kind,
default), its array roles (read or written, optional, which option makes them
required) and the rules that tie parameters together. Everything else reads
this table: ``fastopt._validate`` (the checks and their errors), the native fast
path's pre-check and the docstrings' parameter lists (``fastopt._entry``), the
optimizer classes' group checks, and ``tests/test_specs.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

_INF = float("inf")


@dataclass(frozen=True)
class Kind:
    """A hyper-parameter's type and range: ``low <= value <= high`` (``<`` on an
    open side). ``rule`` is how errors and docstrings say the range."""
    type: str                      # "real", "int", "bool", "str" (backend), "shape", "scale"
    rule: str = ""
    low: float = -_INF
    high: float = _INF
    low_open: bool = False
    high_open: bool = False
    example: object = None         # a valid value other than the default (for tests)
    optional: bool = False         # None is accepted too

    def contains(self, value) -> bool:
        return ((self.low < value if self.low_open else self.low <= value)
                and (value < self.high if self.high_open else value <= self.high))


NON_NEGATIVE = Kind("real", "must be >= 0.0", 0.0, example=0.5)   # inf allowed, as in torch
UNIT = Kind("real", "must be in [0, 1)", 0.0, 1.0, high_open=True, example=0.5)
CLOSED_UNIT = Kind("real", "must be in [0, 1]", 0.0, 1.0, example=0.5)
POSITIVE = Kind("real", "must be > 0", 0.0, low_open=True, example=0.5)
FINITE = Kind("real", "must be finite", low_open=True, high_open=True, example=0.5)
NORM_ORDER = Kind("real", "must be > 0 or inf", 0.0, low_open=True, example=1.0)
# inf is a norm order, not an overflow: the fast paths take it (max |g|)
_NORM_PLAIN = "type(norm_type) is float and 0.0 < norm_type <= _INF"
FLAG = Kind("bool", example=True)
STEP = Kind("int", "must be >= 1", 1, example=3)
SEED = Kind("int", "must be in [0, 2**64)", 0, 2 ** 64, high_open=True, example=1234)
BACKEND = Kind("str", "'auto', 'numpy', 'numba', 'cpp' or 'cuda'", example="auto")
SHAPE = Kind("shape", "an int or a sequence of ints >= 0", example=(3, 5))
OPTIONAL_STEP = Kind("int", "None or an int >= 1", 1, example=3, optional=True)
# the AMP loss scale: a float, or a 1-element float32 array on the arrays' device
GRAD_SCALE = Kind("scale", "None, a positive finite float or a 1-element float32 array", 0.0,
                  low_open=True, high_open=True, example=1024.0, optional=True)

REQUIRED = object()   # a hyper-parameter without a default


@dataclass(frozen=True)
class Hyper:
    name: str
    kind: Kind
    default: object = REQUIRED
    per_call: bool = False    # set per call (or per class), not an optimizer group option
    plain: str = ""           # the fast path's pre-check when narrower than the kind's test


@dataclass(frozen=True)
class Need:
    """``option op value``: the condition under which an optional array is
    required (and used; otherwise it is ignored)."""
    option: str
    op: str            # "==", "!=" or ">"
    value: object

    @property
    def expr(self) -> str:
        return self._expr(self.op, True)

    @property
    def off(self) -> str:
        """The negation: when the array is not needed."""
        return self._expr({"==": "!=", "!=": "==", ">": "<="}[self.op], False)

    def _expr(self, op, positive):
        if isinstance(self.value, bool):
            return self.option if self.value == positive else f"not {self.option}"
        # a float literal: the options are floats by then, and float == float is the fast compare
        return f"{self.option} {op} {float(self.value)!r}"

    @property
    def text(self) -> str:
        """How errors and docstrings say it: ``momentum != 0``, ``centered=True``."""
        if self.op == "==" and isinstance(self.value, bool):
            return f"{self.option}={self.value}"
        return f"{self.option} {self.op} {self.value}"


@dataclass(frozen=True)
class Role:
    name: str
    written: object = False        # True, False, or the flag under which it is written
    optional: bool = False         # None is accepted
    when: Optional[Need] = None    # None is refused (and the array used) when this holds
    message: str = ""              # the error when `when` holds and it is None
    dtype: str = "float"           # "float" (a storage type, see precision), "bits", "flag", "stat"
    # "stat": float32 when the call's dtype is 16-bit (batch norm's gamma, beta and
    # statistics with a float16/bfloat16 x), else the call's dtype
    signed: Optional[bool] = None  # may be an 8-bit QuantizedState with this map (fastopt.quantized)
    # mixed precision (optimizer steps): "param" (its type P), "grad" (P, or float32 when P
    # is 16-bit), "state" (P or float32, one type per call), "master" (float32, P 16-bit);
    # "" (every other kernel): the call's one dtype
    precision: str = ""

    @property
    def missing(self) -> str:
        return self.message or f"{self.name} is required when {self.when.text}"


@dataclass(frozen=True)
class Rule:
    """A cross-parameter rule: ``expr`` (Python, over the parameters) must hold."""
    expr: str
    message: str
    per_call: bool = False    # over per-call parameters: not a rule of an optimizer group
    plain: bool = True        # restated in the fast path's pre-check (False: implied there)


@dataclass(frozen=True)
class Kernel:
    name: str
    arrays: Tuple[Role, ...]
    hypers: Tuple[Hyper, ...]
    rules: Tuple[Rule, ...] = ()
    returns: str = ""                      # what the call returns, for the docstring
    group_options: Tuple[Hyper, ...] = ()  # extra options of the optimizer class's groups
    half: bool = False                     # float16/bfloat16 arrays too (DESIGN s.7)

    def hyper(self, name) -> Hyper:
        return next(h for h in self.hypers if h.name == name)


def _backend():
    return Hyper("backend", BACKEND, "auto", per_call=True)


def _state(name, when=None, signed=None):
    return Role(name, written=True, optional=when is not None, when=when, signed=signed,
                precision="state")


_PARAM, _GRAD = Role("param", written=True, precision="param"), Role("grad", precision="grad")
_LR, _WD = Hyper("lr", NON_NEGATIVE), Hyper("weight_decay", NON_NEGATIVE, 0.0)
_MAXIMIZE = Hyper("maximize", FLAG, False)
# mixed precision (docs/mixed-precision.md): the arrays after the states, the options
# before ``backend``; the fast path takes none of them (their plain value is the default)
_MASTER = Role("master_param", written=True, optional=True, precision="master")
_FOUND_INF = Role("found_inf", optional=True, dtype="flag")
_GRAD_SCALE = Hyper("grad_scale", GRAD_SCALE, None, per_call=True, plain="grad_scale is None")
_SR = (Hyper("stochastic_rounding", FLAG, False, per_call=True,
             plain="stochastic_rounding is False"),
       # ``is``: only the int 0 itself (cached by CPython) passes; any other seed is validated
       Hyper("seed", SEED, 0, per_call=True, plain="seed is _ZERO"))
_SR_STEP = Rule("not stochastic_rounding or step is not None",
                "stochastic_rounding=True needs step=, the 1-based count of this update: the "
                "random bits are a function of seed, step and the element index", per_call=True,
                plain=False)   # the fast path's "stochastic_rounding is False" implies it

KERNELS = {k.name: k for k in (
    Kernel("sgd_step", (_PARAM, _GRAD, _state("momentum_buffer", Need("momentum", "!=", 0), True),
                        _MASTER, _FOUND_INF),
           (_LR, Hyper("momentum", NON_NEGATIVE, 0.0), Hyper("dampening", FINITE, 0.0), _WD,
            Hyper("nesterov", FLAG, False), _MAXIMIZE, Hyper("first_step", FLAG, False, per_call=True),
            _GRAD_SCALE, *_SR, Hyper("step", OPTIONAL_STEP, None, per_call=True), _backend()),
           (Rule("not nesterov or (momentum > 0.0 and dampening == 0.0)",
                 "Nesterov momentum requires a momentum and zero dampening"), _SR_STEP)),
    Kernel("rmsprop_step",
           (_PARAM, _GRAD, _state("square_avg", signed=False),
            _state("momentum_buffer", Need("momentum", ">", 0), True),
            _state("grad_avg", Need("centered", "==", True), True), _MASTER, _FOUND_INF),
           (_LR, Hyper("alpha", NON_NEGATIVE, 0.99), Hyper("eps", NON_NEGATIVE, 1e-8), _WD,
            Hyper("momentum", NON_NEGATIVE, 0.0), Hyper("centered", FLAG, False), _MAXIMIZE,
            _GRAD_SCALE, *_SR, Hyper("step", OPTIONAL_STEP, None, per_call=True), _backend()),
           (_SR_STEP,)),
    Kernel("adam_step",
           (_PARAM, _GRAD, _state("exp_avg", signed=True), _state("exp_avg_sq", signed=False),
            _state("max_exp_avg_sq", Need("amsgrad", "==", True)), _MASTER, _FOUND_INF),
           (Hyper("step", STEP, per_call=True), _LR, Hyper("beta1", UNIT, 0.9), Hyper("beta2", UNIT, 0.999),
            Hyper("eps", NON_NEGATIVE, 1e-8), _WD, Hyper("decoupled_weight_decay", FLAG, False, per_call=True),
            Hyper("amsgrad", FLAG, False), _MAXIMIZE, _GRAD_SCALE, *_SR, _backend())),
    Kernel("adagrad_step", (_PARAM, _GRAD, _state("state_sum"), _MASTER, _FOUND_INF),
           (Hyper("step", STEP, per_call=True), _LR, Hyper("lr_decay", NON_NEGATIVE, 0.0),
            Hyper("eps", NON_NEGATIVE, 1e-10), _WD, _MAXIMIZE, _GRAD_SCALE, *_SR, _backend()),
           group_options=(Hyper("initial_accumulator_value", NON_NEGATIVE, 0.0),)),
    Kernel("batch_norm_forward",
           (Role("x"), Role("gamma", optional=True, dtype="stat"),
            Role("beta", optional=True, dtype="stat"),
            *(Role(n, written="training", optional=True, when=Need("training", "==", False),
                   dtype="stat",
                   message="eval (training=False) normalizes with running_mean and running_var: "
                           "they cannot be None")
              for n in ("running_mean", "running_var"))),
           (Hyper("training", FLAG, True), Hyper("momentum", CLOSED_UNIT, 0.1),
            Hyper("eps", POSITIVE, 1e-5), _backend()),
           (Rule("(running_mean is None) == (running_var is None)",
                 "running_mean and running_var must both be arrays or both be None"),),
           returns="(y, save_mean, save_invstd), new arrays", half=True),
    Kernel("batch_norm_backward",
           (Role("dy"), Role("x"), Role("gamma", optional=True, dtype="stat"),
            Role("save_mean", dtype="stat"), Role("save_invstd", dtype="stat")),
           (Hyper("training", FLAG, True), _backend()),
           returns="(dx, dgamma, dbeta), new arrays", half=True),
    Kernel("dropout_forward", (Role("x"),),
           (Hyper("p", CLOSED_UNIT), Hyper("seed", SEED), Hyper("training", FLAG, True),
            _backend()),
           returns="(y, mask): a new array and its bit-packed uint8 mask", half=True),
    Kernel("dropout_backward", (Role("dy"), Role("mask", optional=True, dtype="bits")),
           (Hyper("p", CLOSED_UNIT), _backend()), returns="dx, a new array", half=True),
    Kernel("dropout_mask", (),
           (Hyper("shape", SHAPE), Hyper("p", CLOSED_UNIT), Hyper("seed", SEED), _backend()),
           returns="the bit-packed uint8 mask"),
    Kernel("ema_update", (Role("avg", written=True), Role("param")),
           (Hyper("decay", CLOSED_UNIT), _backend())),
    Kernel("clip_grad_norm", (Role("grads", written=True),),
           (Hyper("max_norm", NON_NEGATIVE),
            Hyper("norm_type", NORM_ORDER, 2.0, plain=_NORM_PLAIN),
            Hyper("error_if_nonfinite", FLAG, False), _backend(), Hyper("sync", FLAG, True)),
           returns="the total norm before clipping: a float, or with sync=False on GPU arrays "
                   "a 0-d device array"),
    Kernel("grad_norm", (Role("grads"),),
           (Hyper("norm_type", NORM_ORDER, 2.0, plain=_NORM_PLAIN), _backend()),
           returns="the total norm, a float"),
)}
