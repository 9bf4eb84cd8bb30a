"""Behaviours torch's optimizer tests check, run on torch.optim (the control: a
test that fails there is a wrong test) and on fastopt.torch."""
import copy
import inspect
import io
import warnings

import pytest

torch = pytest.importorskip("torch")
import fastopt.torch as ft  # noqa: E402

NAMES = ("SGD", "RMSprop", "Adam", "AdamW", "Adagrad")
IMPLS = {"torch": torch.optim, "fastopt": ft}
KW = {"SGD": dict(lr=0.1, momentum=0.9), "RMSprop": dict(lr=0.01, momentum=0.5, centered=True),
      "Adam": dict(lr=0.1, amsgrad=True), "AdamW": dict(lr=0.1), "Adagrad": dict(lr=0.1)}
BOTH = pytest.mark.parametrize("impl", list(IMPLS))
EACH = pytest.mark.parametrize("name", NAMES)


def _cls(impl, name):
    return getattr(IMPLS[impl], name)


def _params(seed=0, n=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(4 + i, generator=g, dtype=torch.float64))
            for i in range(n)]


def _grads(ps, k):
    g = torch.Generator().manual_seed(100 + k)
    for p in ps:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)


def _train(opt, ps, steps, start=0):
    for k in range(start, start + steps):
        _grads(ps, k)
        opt.step()


# keyword-only arguments fastopt adds after torch's (docs/mixed-precision.md)
FASTOPT_ONLY = ("backend", "master_weights", "state_dtype", "stochastic_rounding", "seed")


def test_signatures_are_torchs():
    for name in NAMES:
        ours = inspect.signature(getattr(ft, name)).parameters
        theirs = inspect.signature(getattr(torch.optim, name)).parameters
        assert [(p.name, p.kind, p.default) for p in theirs.values()] == \
            [(p.name, p.kind, p.default) for p in ours.values() if p.name not in FASTOPT_ONLY]
        assert issubclass(getattr(ft, name), getattr(torch.optim, name))


def test_positional_arguments_as_in_torch():
    p = _params()
    ft.RMSprop(p, 0.01, 0.9, 1e-8, 0, 0, False, False, None, False, False)
    ft.Adagrad(p, 0.01, 0, 0, 0, 1e-10, None)
    ft.Adam(p, decoupled_weight_decay=True)


@BOTH
@EACH
def test_tensor_lr_and_step_as_in_float_lr(impl, name):
    cls = _cls(impl, name)
    a, b = _params(), _params()
    kw = dict(KW[name])
    lr = kw.pop("lr")
    o1, o2 = cls(a, lr=lr, **kw), cls(b, lr=torch.tensor(lr), **kw)
    _train(o1, a, 5)
    _train(o2, b, 5)
    for x, y in zip(a, b):
        torch.testing.assert_close(y, x)


@BOTH
def test_tensor_betas_and_their_errors(impl):
    cls = _cls(impl, "Adam")
    a, b = _params(), _params()
    o1 = cls(a, betas=(0.8, 0.99))
    o2 = cls(b, betas=(torch.tensor(0.8), torch.tensor(0.99)))
    _train(o1, a, 4)
    _train(o2, b, 4)
    for x, y in zip(a, b):
        torch.testing.assert_close(y, x)
    with pytest.raises(ValueError, match="betas must be either both floats or both Tensors"):
        cls(_params(), betas=(0.9, torch.tensor(0.99)))
    with pytest.raises(ValueError, match="Tensor lr must be 1-element"):
        cls(_params(), lr=torch.tensor([0.1, 0.2]))


@BOTH
@EACH
def test_hooks(impl, name):
    ps = _params()
    opt = _cls(impl, name)(ps, **KW[name])
    calls = []
    h1 = opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    opt.register_state_dict_post_hook(lambda o, sd: calls.append("sd"))
    _train(opt, ps, 2)
    h1.remove()
    _train(opt, ps, 1, start=2)
    opt.state_dict()
    assert calls == ["pre", "post", "pre", "post", "post", "sd"]


@BOTH
@EACH
def test_state_dict_round_trip_deepcopy_and_weights_only(impl, name):
    cls = _cls(impl, name)
    ps = _params()
    opt = cls(ps, **KW[name])
    _train(opt, ps, 3)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    twins = {}
    for how in ("deepcopy", "load", "weights_only"):
        qs = [torch.nn.Parameter(p.detach().clone()) for p in ps]
        if how == "deepcopy":
            o = copy.deepcopy(opt)
            qs = [p for g in o.param_groups for p in g["params"]]
        else:
            o = cls(qs, **KW[name])
            o.load_state_dict(copy.deepcopy(opt.state_dict()) if how == "load" else loaded)
        twins[how] = (o, qs)
    _train(opt, ps, 3, start=3)
    for o, qs in twins.values():
        _train(o, qs, 3, start=3)
        for x, y in zip(ps, qs):
            torch.testing.assert_close(y, x)
        sd, sd0 = o.state_dict(), opt.state_dict()
        assert sd["param_groups"] == sd0["param_groups"]
        for i in sd0["state"]:
            for k in sd0["state"][i]:
                torch.testing.assert_close(sd["state"][i][k], sd0["state"][i][k])


@BOTH
@pytest.mark.parametrize("name", ["RMSprop", "Adam", "AdamW", "Adagrad"])
def test_old_checkpoint_with_step_as_a_number(impl, name):
    cls = _cls(impl, name)
    ps = _params()
    opt = cls(ps, **KW[name])
    _train(opt, ps, 3)
    sd = copy.deepcopy(opt.state_dict())
    for st in sd["state"].values():
        st["step"] = float(st["step"])   # torch < 1.12 saved numbers
    qs = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    o2 = cls(qs, **KW[name])
    o2.load_state_dict(sd)
    _train(opt, ps, 2, start=3)
    _train(o2, qs, 2, start=3)
    for x, y in zip(ps, qs):
        torch.testing.assert_close(y, x)
    assert float(o2.state[qs[0]]["step"]) == 5


@BOTH
def test_sgd_without_momentum_keeps_no_state(impl):
    ps = _params()
    opt = _cls(impl, "SGD")(ps, lr=0.1)
    _train(opt, ps, 2)
    assert len(opt.state) == 0 and opt.state_dict()["state"] == {}


def _twins(name):
    a, b = _params(), _params()
    return (torch.optim, a, getattr(torch.optim, name)(a, **KW[name])), \
        (ft, b, getattr(ft, name)(b, **KW[name]))


@EACH
@pytest.mark.parametrize("edit", ["replace", "clear", "data", "step"])
def test_state_edits_are_seen(name, edit):
    """After editing opt.state or p.data, fastopt steps exactly as torch does."""
    runs = _twins(name)
    for _, ps, o in runs:
        _train(o, ps, 3)
    for _, ps, o in runs:
        p = ps[0]
        if edit == "replace":
            k = next(k for k in o.state[p] if k != "step")
            o.state[p][k] = torch.zeros_like(p) + 0.5
        elif edit == "clear":
            o.state.clear()
        elif edit == "data":
            p.data = torch.linspace(-1, 1, p.numel(), dtype=p.dtype)
        elif edit == "step" and "step" in o.state[p]:
            o.state[p]["step"] = torch.tensor(0.0)
        if edit == "clear":
            assert o.state_dict()["state"] == {}
    if edit == "clear" and name == "Adagrad":
        pass   # torch.optim.Adagrad recreates its state lazily, so does fastopt
    for _, ps, o in runs:
        _train(o, ps, 3, start=3)
    (_, a, o1), (_, b, o2) = runs
    for x, y in zip(a, b):
        torch.testing.assert_close(y, x)
    s1, s2 = o1.state_dict(), o2.state_dict()
    assert s1["state"].keys() == s2["state"].keys()
    for i in s1["state"]:
        for k in s1["state"][i]:
            torch.testing.assert_close(s2["state"][i][k], s1["state"][i][k])


def test_in_place_step_edit_is_seen():
    runs = _twins("Adam")
    for _, ps, o in runs:
        _train(o, ps, 3)
        o.state[ps[1]]["step"].zero_()
        _train(o, ps, 2, start=3)
    (_, a, _), (_, b, _) = runs
    for x, y in zip(a, b):
        torch.testing.assert_close(y, x)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_failed_step_writes_nothing(name):
    a = [torch.nn.Parameter(torch.randn(3, dtype=torch.float64))]
    b = [torch.nn.Parameter(torch.randn(3).to(torch.bfloat16))]
    opt = getattr(ft, name)([{"params": a}, {"params": b}], **KW[name])
    for p in a + b:
        p.grad = torch.ones_like(p)
    # a state entry of the wrong type (float16 beside a bfloat16 parameter)
    opt.state[b[0]] = {"momentum_buffer": torch.zeros(3, dtype=torch.float16)} if name == "SGD" \
        else {"step": torch.tensor(1.0), "exp_avg": torch.zeros(3, dtype=torch.float16),
              "exp_avg_sq": torch.zeros(3, dtype=torch.bfloat16)}
    before = a[0].detach().clone()
    with pytest.raises(ValueError, match="bfloat16"):
        opt.step()
    assert torch.equal(a[0].detach(), before) and a[0] not in opt.state


def test_rejected_first_momentum_step_leaves_no_buffer():
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    bad = torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16))
    opt = ft.SGD([p, bad], lr=1.0, momentum=0.5, dampening=0.5)
    p.grad, bad.grad = torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.bfloat16)
    opt.state[bad]["momentum_buffer"] = torch.zeros(2, dtype=torch.float16)   # the wrong type
    with pytest.raises(ValueError, match="bfloat16"):
        opt.step()
    assert p not in opt.state
    del opt.state[bad]
    bad.grad = None
    opt.step()   # still the first momentum step: buf = g, p -= lr * g
    assert torch.equal(p.detach(), torch.full((2,), -1.0, dtype=torch.float64))


@BOTH
@EACH
def test_version_counter_bumped(impl, name):
    p = torch.nn.Parameter(torch.randn(3))
    opt = _cls(impl, name)([p], **KW[name])
    y = (p * p).sum()    # saves p for backward
    p.grad = torch.ones(3)
    v0 = p._version
    opt.step()
    assert p._version > v0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


@BOTH
@EACH
def test_complex_equals_real_view(impl, name):
    """torch steps complex parameters on view_as_real."""
    cls = _cls(impl, name)
    z = torch.nn.Parameter(torch.randn(5, dtype=torch.complex128))
    r = torch.nn.Parameter(torch.view_as_real(z.detach()).clone())
    o1, o2 = cls([z], **KW[name]), cls([r], **KW[name])
    for k in range(4):
        g = torch.randn(5, dtype=torch.complex128)
        z.grad, r.grad = g, torch.view_as_real(g).clone()
        o1.step()
        o2.step()
    torch.testing.assert_close(torch.view_as_real(z.detach()), r.detach())


@pytest.mark.parametrize("name", ["SGD", "Adagrad"])
def test_sparse_grads_match_torch(name):
    e1 = torch.nn.Embedding(10, 3, sparse=True, dtype=torch.float64)
    e2 = copy.deepcopy(e1)
    kw = dict(lr=0.1)
    o1, o2 = getattr(torch.optim, name)(e1.parameters(), **kw), getattr(ft, name)(e2.parameters(), **kw)
    with pytest.warns(UserWarning, match="sparse"):
        for k in range(3):
            idx = torch.tensor([k, 2 * k + 1])
            for e, o in ((e1, o1), (e2, o2)):
                o.zero_grad()
                e(idx).sum().backward()
                o.step()
    torch.testing.assert_close(e2.weight, e1.weight)


def test_differentiable_falls_back():
    ps = [torch.randn(3, dtype=torch.float64)]
    qs = [p.clone() for p in ps]
    o1, o2 = torch.optim.Adam(ps, differentiable=True), ft.Adam(qs, differentiable=True)
    with pytest.warns(UserWarning, match="differentiable"):
        for k in range(3):
            _grads(ps, k)
            _grads(qs, k)
            o1.step()
            o2.step()
    for x, y in zip(ps, qs):
        torch.testing.assert_close(y, x)


@BOTH
def test_capturable_on_cpu_is_torchs_error(impl):
    ps = _params()
    opt = _cls(impl, "Adam")(ps, capturable=True)
    _grads(ps, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AssertionError, match="capturable=True"):
            opt.step()


def test_meta_params_fall_back():
    p = torch.nn.Parameter(torch.empty(3, device="meta"))
    opt = ft.Adam([p])
    p.grad = torch.empty(3, device="meta")
    with pytest.warns(UserWarning, match="meta"):
        opt.step()


def test_sixteen_bit_is_torchs():
    """16-bit parameters step as torch's (fused) Adam steps them (state of their type);
    tests/test_mixed_precision_torch.py compares every option."""
    p0 = torch.randn(3).to(torch.float16)
    a, b = torch.nn.Parameter(p0.clone()), torch.nn.Parameter(p0.clone())
    ours, theirs = ft.Adam([a], backend="numpy"), torch.optim.Adam([b], fused=True)
    a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
    ours.step()
    theirs.step()
    assert torch.equal(a.detach(), b.detach()) and ours.state[a]["exp_avg"].dtype == torch.float16


@BOTH
@EACH
def test_add_param_group_and_group_options(impl, name):
    cls = _cls(impl, name)
    a, b = _params(0, 1), _params(1, 1)
    opt = cls(a, **KW[name])
    opt.add_param_group({"params": b, "lr": 0.0, "weight_decay": 0.0})
    before = b[0].detach().clone()
    _train(opt, a + b, 2)
    assert torch.equal(b[0].detach(), before) and not torch.equal(a[0].detach(), _params(0, 1)[0])
    with pytest.raises(ValueError, match="some parameters appear in more than one"):
        opt.add_param_group({"params": a})


@BOTH
@EACH
def test_zero_grad_closure_and_repr(impl, name):
    ps = _params()
    opt = _cls(impl, name)(ps, **KW[name])
    _grads(ps, 0)
    opt.zero_grad()
    assert all(p.grad is None for p in ps)
    _grads(ps, 0)
    opt.zero_grad(set_to_none=False)
    assert all(torch.count_nonzero(p.grad) == 0 for p in ps)

    def closure():
        opt.zero_grad()
        loss = sum((p ** 2).sum() for p in ps)
        loss.backward()
        return loss
    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor)
    text = repr(opt)
    assert text.startswith(name + " (") and "lr: " in text


def test_odd_layouts_are_updated_in_place():
    bases = [torch.randn(4, 3, 3, 3).to(memory_format=torch.channels_last),
             torch.randn(10, 5, 2), torch.randn(5, 3)]

    def views(b):
        return [b[0], b[1][..., 0], b[2].t()]
    w, s, t = [torch.nn.Parameter(x) for x in views(bases)]
    ref = [torch.nn.Parameter(x) for x in views([b.clone() for b in bases])]
    for x, y in zip(ref, (w, s, t)):
        assert x.stride() == y.stride()
    ptrs = [x.data_ptr() for x in (w, s, t)]
    o1, o2 = torch.optim.Adam(ref, lr=0.1), ft.Adam([w, s, t], lr=0.1)
    for k in range(3):
        for a, b in zip(ref, (w, s, t)):
            a.grad = torch.randn(a.shape)
            b.grad = a.grad.clone()
        o1.step()
        o2.step()
    assert ptrs == [x.data_ptr() for x in (w, s, t)]
    assert o2.state[w]["exp_avg"].stride() == w.stride()
    for a, b in zip(ref, (w, s, t)):
        torch.testing.assert_close(b, a)


def test_no_warning_on_the_plain_path():
    ps = _params()
    opt = ft.Adam(ps)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _train(opt, ps, 3)
