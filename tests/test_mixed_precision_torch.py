"""fastopt.torch with bfloat16 / float16 parameters and under torch.amp.GradScaler.

- Adam / AdamW: trajectories of 16-bit parameters against ``torch.optim.X(fused=True)``
  on the same tensors, every option: bit for bit where fused Adam agrees, and never more
  than one 16-bit step apart.
- SGD / RMSprop / Adagrad: against torch's float32 step on widened copies of the 16-bit
  parameter and state, rounded once per step (what fused Adam does; torch 2.13's fused
  SGD is wrong for 16-bit on the CPU, test_torch_fused_sgd_is_wrong_for_16_bit).
- GradScaler with autocast: fastopt.torch.Adam matches torch's fused Adam under the same
  scaler, skipped steps included.
"""
import copy
import re

import pytest

torch = pytest.importorskip("torch")

import fastopt  # noqa: E402
import fastopt.torch as fot  # noqa: E402
from conftest import count_validated_steps  # noqa: E402

BACKENDS = ["numpy"] + [b for b in ("cpp", "numba") if b in fastopt.available_backends()]
HALF = [torch.bfloat16, torch.float16]
STEPS = 6


def _ulps(a, b):
    """How many 16-bit steps apart two tensors of one 16-bit type are, elementwise."""
    def mono(t):
        i = t.view(torch.int16).to(torch.int32) & 0xFFFF
        return torch.where(i >= 0x8000, -(i & 0x7FFF), i)
    return (mono(a) - mono(b)).abs()


def _data(n, dtype, seed):
    """Fresh random data; gradients at least 0.5 in magnitude, so that float16 second
    moments ((1 - beta2) g^2) stay normal: a subnormal one has so few bits that the
    float64 reference and a float32 kernel may round it a whole unit apart."""
    g = torch.Generator().manual_seed(seed)
    p0 = torch.randn(n, generator=g).to(dtype)
    grads = []
    for _ in range(STEPS):
        x = torch.randn(n, generator=g)
        grads.append((torch.sign(x) * (0.5 + x.abs())).to(dtype))
    return p0, grads


ADAM_OPTIONS = [dict(), dict(amsgrad=True), dict(weight_decay=0.1), dict(maximize=True),
                dict(betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01, amsgrad=True)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
@pytest.mark.parametrize("options", ADAM_OPTIONS, ids=[str(o) for o in ADAM_OPTIONS])
@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("n", [17, 1023])
def test_adam_trajectory_against_torch_fused(cls, options, dtype, n, backend):
    p0, grads = _data(n, dtype, n)
    a, b = torch.nn.Parameter(p0.clone()), torch.nn.Parameter(p0.clone())
    ref = getattr(torch.optim, cls)([a], lr=1e-2, fused=True, **options)
    opt = getattr(fot, cls)([b], lr=1e-2, backend=backend, **options)
    exact = 0
    for g in grads:
        a.grad, b.grad = g.clone(), g.clone()
        ref.step()
        opt.step()
        assert _ulps(a.detach(), b.detach()).max() <= 1
        exact += int(torch.equal(a.detach(), b.detach()))
        a.data.copy_(b.data)   # each step from the same point: one step's rounding at most
        for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if k in opt.state[b]:
                ref.state[a][k].copy_(opt.state[b][k])
    for name in ("exp_avg", "exp_avg_sq"):
        assert opt.state[b][name].dtype == dtype   # torch's: state of the param's type
        assert _ulps(ref.state[a][name], opt.state[b][name]).max() <= 1
    assert float(opt.state[b]["step"]) == STEPS
    if backend != "numpy":   # a float32 kernel is fused Adam's arithmetic (float64 is not)
        assert exact >= STEPS - 1, f"bit-identical on only {exact} of {STEPS} steps"


def _widened_reference(cls, p0, grads, dtype, state16, **options):
    """torch's float32 step on widened copies, parameter and state rounded to ``dtype``
    once per step (state kept float32 when not ``state16``)."""
    w = torch.nn.Parameter(p0.float())
    opt = getattr(torch.optim, cls)([w], foreach=False, **options)
    for g in grads:
        w.data.copy_(w.data.to(dtype).float())
        w.grad = g.float()
        opt.step()
        w.data.copy_(w.data.to(dtype).float())
        if state16:
            for k, t in opt.state[w].items():
                if k != "step" and isinstance(t, torch.Tensor):
                    t.copy_(t.to(dtype).float())
    return w.detach().to(dtype), opt


OTHER = [("SGD", dict(lr=0.05)), ("SGD", dict(lr=0.05, momentum=0.9)),
         ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
         ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, maximize=True)),
         ("RMSprop", dict(lr=0.01)), ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9)),
         ("RMSprop", dict(lr=0.01, alpha=0.9, weight_decay=0.01, maximize=True)),
         ("Adagrad", dict(lr=0.1)), ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01)),
         ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, maximize=True))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", OTHER, ids=[f"{c}-{o}" for c, o in OTHER])
@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("state", ["param", "float32"])
def test_against_torch_float32_on_widened_copies(case, dtype, state, backend):
    """Each step from the same point (the reference's values copied back after each
    step), so that every stored value is compared after one step's rounding."""
    cls, options = case
    n = 1023
    p0, grads = _data(n, dtype, 7)
    sdt = dtype if state == "param" else torch.float32
    w = torch.nn.Parameter(p0.float())
    ref = getattr(torch.optim, cls)([w], foreach=False, **options)
    b = torch.nn.Parameter(p0.clone())
    kw = {} if state == "param" else dict(state_dtype=torch.float32)
    opt = getattr(fot, cls)([b], backend=backend, **options, **kw)
    exact = total = 0
    for g in grads:
        w.grad, b.grad = g.float(), g.clone()
        ref.step()
        opt.step()
        w.data.copy_(w.data.to(dtype).float())          # rounded once per step
        pairs = [(w.detach().to(dtype), b.detach())]
        for k, t in ref.state[w].items():
            if k != "step":
                t.copy_(t.to(sdt).float())
                assert opt.state[b][k].dtype == sdt, k
                pairs.append((t.to(sdt), opt.state[b][k]))
        for want, got in pairs:
            if want.dtype in HALF:   # one step, or float32 roundings of the scale (~3)
                u = _ulps(want, got)   # for values that cancel to near zero
                assert not ((u > 1) & ((want.float() - got.float()).abs() > 32 * 2.0 ** -24 * 3)).any()
                exact, total = exact + int((u == 0).sum()), total + u.numel()
            else:
                # float32 state: OPTIM_ULPS (32) roundings of the element scale (~3)
                torch.testing.assert_close(got, want, rtol=1e-5, atol=32 * 2.0 ** -24 * 3)
            got.copy_(want)                              # the next step from the same point
    assert exact >= 0.99 * total


def test_torch_fused_sgd_is_wrong_for_16_bit():
    """Documents torch 2.13's bug (docs/mixed-precision.md): its fused CPU SGD with
    momentum on 16-bit parameters of 16 or more elements fills the momentum buffers
    with inf, NaN or huge values, while fastopt matches the widened float32 step. If
    this test fails, torch has fixed it: update the docs."""
    wrong = 0
    for dtype in HALF:
        for n in (16, 1000, 4097):
            p0, grads = _data(n, dtype, n)
            want, ref = _widened_reference("SGD", p0, grads, dtype, True, lr=0.01, momentum=0.9)
            a, b = torch.nn.Parameter(p0.clone()), torch.nn.Parameter(p0.clone())
            fused = torch.optim.SGD([a], lr=0.01, momentum=0.9, fused=True)
            ours = fot.SGD([b], lr=0.01, momentum=0.9, backend="numpy")
            for g in grads:
                a.grad, b.grad = g.clone(), g.clone()
                fused.step()
                ours.step()
            assert _ulps(want, b.detach()).max() <= 2     # fastopt: right
            buf = fused.state[a]["momentum_buffer"].float()
            good = ref.state[ref.param_groups[0]["params"][0]]["momentum_buffer"]
            if not torch.isfinite(buf).all() or (buf - good).abs().max() > 1.0:
                wrong += 1
    assert wrong > 0, "torch's fused SGD now handles 16-bit parameters: update the docs"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_master_weights_and_float32_state(dtype, backend):
    p0, grads = _data(1023, dtype, 3)
    b = torch.nn.Parameter(p0.clone())
    opt = fot.AdamW([b], lr=1e-2, backend=backend, master_weights=True,
                    state_dtype=torch.float32)
    for g in grads:
        b.grad = g.clone()
        opt.step()
    st = opt.state[b]
    assert st["master_param"].dtype == torch.float32 and st["exp_avg"].dtype == torch.float32
    assert torch.equal(b.detach(), st["master_param"].to(dtype))   # its rounding, bit for bit
    # the master follows a float32 AdamW run on float32 gradients widened from the 16-bit ones
    w = torch.nn.Parameter(p0.float())
    ref = torch.optim.AdamW([w], lr=1e-2, foreach=False)
    for g in grads:
        w.grad = g.float()
        ref.step()
    torch.testing.assert_close(st["master_param"], w.detach(), rtol=1e-5, atol=1e-6)
    # state dicts keep the float32 state and master (torch's load would cast them)
    sd = copy.deepcopy(opt.state_dict())   # torch's state_dict shares the live tensors
    c = torch.nn.Parameter(b.detach().clone())
    opt2 = fot.AdamW([c], lr=1e-2, backend=backend, master_weights=True,
                     state_dtype=torch.float32)
    opt2.load_state_dict(sd)
    assert opt2.state[c]["master_param"].dtype == torch.float32
    assert torch.equal(opt2.state[c]["master_param"], st["master_param"])
    g = torch.randn(1023).to(dtype)
    b.grad, c.grad = g.clone(), g.clone()
    opt.step()
    opt2.step()
    assert torch.equal(b.detach(), c.detach())   # resumed exactly


def _scaled_run(make, pdtype, steps=14, init_scale=2.0 ** 17):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 1)).to(pdtype)
    opt = make(model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=2)
    gen = torch.Generator().manual_seed(1)
    scales = []
    for _ in range(steps):
        x = torch.randn(64, 16, generator=gen).to(pdtype)
        y = torch.randn(64, 1, generator=gen).to(pdtype)
        with torch.autocast("cpu", dtype=torch.float16):
            loss = ((model(x).float() - y.float()) ** 2).mean()
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    return [p.detach().clone() for p in model.parameters()], scales, opt


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pdtype", [torch.float32] + HALF, ids=str)
def test_under_grad_scaler_like_torch_fused(pdtype, backend):
    want, scales_t, ref = _scaled_run(lambda ps: torch.optim.Adam(ps, lr=1e-2, fused=True), pdtype)
    got, scales_f, opt = _scaled_run(lambda ps: fot.Adam(ps, lr=1e-2, backend=backend), pdtype)
    assert opt._step_supports_amp_scaling is True
    assert scales_f == scales_t                      # the same steps were skipped
    assert len(set(scales_t)) > 1 and min(b / a for a, b in zip(scales_t, scales_t[1:])) < 1
    steps_t = [float(ref.state[p]["step"]) for p in ref.param_groups[0]["params"]]
    steps_f = [float(opt.state[p]["step"]) for p in opt.param_groups[0]["params"]]
    assert steps_f == steps_t and 0 < steps_t[0] < 14    # skipped steps do not count
    for a, b in zip(want, got):
        if pdtype == torch.float32:   # 14 steps of float32 (float64 for the reference) rounding
            torch.testing.assert_close(b, a, rtol=1e-4, atol=2e-5)
        elif backend != "numpy":      # float32 kernels: fused Adam's arithmetic, lerp included
            assert _ulps(a, b).max() == 0
        else:   # a network's trajectory feeds the float64 reference's roundings back
            assert (_ulps(a, b) == 0).float().mean() > 0.9 and _ulps(a, b).max() <= 64


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pdtype", [torch.float32] + HALF, ids=str)
def test_grad_scaler_steps_are_planned(pdtype, backend, monkeypatch):
    """Under a GradScaler every step has a scale; such steps reuse the group's plan (they
    took the validated functional step every time), with the validated path's bits."""
    class Unplanned(fot.Adam):
        def step(self, closure=None):
            self._fo_plans.clear()   # the reference validates every step
            return super().step(closure)

    want, scales_v, _ = _scaled_run(lambda ps: Unplanned(ps, lr=1e-2, backend=backend), pdtype)
    counted = []

    def make(ps):
        opt = fot.Adam(ps, lr=1e-2, backend=backend)
        counted.append(count_validated_steps(monkeypatch, opt))
        return opt
    got, scales_p, opt = _scaled_run(make, pdtype)
    calls = counted[0]
    assert scales_p == scales_v and len(set(scales_p)) > 1
    assert len(calls) == 1 and calls[0] is not None   # the first step made the plan
    bits = torch.int32 if pdtype == torch.float32 else torch.int16
    for a, b in zip(want, got):
        assert torch.equal(a.view(bits), b.view(bits))


def test_grad_scaler_gradients_stay_scaled():
    """torch's fused kernels write the unscaled gradient back into .grad; fastopt does
    not (docs/mixed-precision.md): after scaler.step the gradient is still scaled."""
    p = torch.nn.Parameter(torch.randn(64))
    opt = fot.Adam([p], lr=1e-3, backend="numpy")
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    (p * torch.randn(64)).sum().mul(1.0).backward()
    unscaled = p.grad.clone()
    p.grad.mul_(1024.0)
    scaler.scale(torch.zeros((), requires_grad=True))   # the scaler's scale tensor exists now
    scaler.step(opt)
    torch.testing.assert_close(p.grad, unscaled * 1024.0)


def test_state_dtype_is_checked():
    p = torch.nn.Parameter(torch.randn(4).to(torch.bfloat16))
    with pytest.raises(TypeError, match="state_dtype"):
        fot.Adam([p], state_dtype=torch.int8)
    with pytest.raises(ValueError, match="stochastic_rounding"):
        fot.SGD([p], stochastic_rounding=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("mode", ["param-state", "master-float32-state", "stochastic"])
@pytest.mark.parametrize("cls", ["AdamW", "RMSprop"])
def test_16_bit_groups_reuse_a_plan_and_notice_edits(cls, dtype, mode, backend, monkeypatch):
    """16-bit parameters plan their steps as float32 ones do (they took the validated
    functional step every time, about 7x torch's fused step over 200 tensors): the same
    bits as the unplanned path, step after step, and a replaced master copy, a float32
    gradient or a replaced state tensor is noticed."""
    kw = {"param-state": {}, "master-float32-state": dict(master_weights=True,
                                                          state_dtype=torch.float32),
          "stochastic": dict(stochastic_rounding=True, seed=2 ** 64 - 7)}[mode]
    gen = torch.Generator().manual_seed(5)
    p0 = [torch.randn(n, generator=gen).to(dtype) for n in (33, 7, 1025)]
    ours = [torch.nn.Parameter(p.clone()) for p in p0]
    refs = [torch.nn.Parameter(p.clone()) for p in p0]
    opt = getattr(fot, cls)(ours, lr=1e-2, backend=backend, **kw)
    ref = getattr(fot, cls)(refs, lr=1e-2, backend=backend, **kw)

    def step(grad_dtype=dtype):
        for a, b in zip(ours, refs):
            g = torch.randn(a.shape, generator=gen).to(grad_dtype)
            if grad_dtype != dtype:   # torch 2.13 asks for this before a float32 .grad
                a.grad_dtype = b.grad_dtype = None
            a.grad, b.grad = g.clone(), g.clone()
        opt.step()
        ref._fo_plans.clear()   # the reference takes the checked, unplanned path
        ref.step()
        for a, b in zip(ours, refs):
            assert torch.equal(a.view(torch.int16), b.view(torch.int16))
        for a, b in zip(ours, refs):
            for n, t in ref.state[b].items():
                assert torch.equal(opt.state[a][n], t), n

    step()
    step()
    assert 0 in opt._fo_plans   # before: 16-bit groups never planned
    calls = count_validated_steps(monkeypatch, opt)

    def planned(grad_dtype=dtype):
        calls.raising = True
        step(grad_dtype)
        calls.raising = False
    planned()
    step(torch.float32)   # a float32 gradient of a 16-bit parameter: the plan rebuilds
    planned(torch.float32)   # and is reused for float32 gradients
    step()
    name = "master_param" if "master_weights" in kw else ("exp_avg" if cls == "AdamW"
                                                         else "square_avg")
    for a, b in zip(ours, refs):
        fresh = torch.randn(a.shape, generator=gen).abs().to(opt.state[a][name].dtype)
        opt.state[a][name], ref.state[b][name] = fresh.clone(), fresh.clone()
    edited = opt.state[ours[0]][name]
    step()
    assert opt.state[ours[0]][name] is edited and not torch.equal(edited, ref.state[refs[0]][name] * 0)
    for _ in range(3):
        step()


@pytest.mark.parametrize("kw, only", [(dict(master_weights=True), "master_weights=True"),
                                      (dict(state_dtype=torch.float32), "state_dtype"),
                                      (dict(stochastic_rounding=True, seed=1),
                                       "stochastic_rounding=True")])
def test_what_torch_cannot_step_is_refused_not_set_aside(kw, only):
    """Parameters fastopt hands to torch's own step (here: gradients sharing memory)
    must not use what that step lacks; the call raises and changes nothing. Before, a
    master-weights step went to torch's Adam, which counted the step, then failed."""
    gen = torch.Generator().manual_seed(5)
    ps = [torch.nn.Parameter(torch.randn(8, generator=gen).bfloat16()) for _ in range(2)]
    opt = fastopt.torch.Adam(ps, lr=0.1, **kw)
    for p in ps:
        p.grad = torch.randn(8, generator=gen).bfloat16()
    opt.step()
    before = [p.detach().clone() for p in ps]
    state = {k: t.clone() for k, t in opt.state[ps[0]].items()}
    ps[0].grad = ps[1].detach()   # shares the second parameter's memory
    with pytest.raises(ValueError, match=f"share memory.*no {re.escape(only)}"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, before))
    assert all(torch.equal(state[k], t) for k, t in opt.state[ps[0]].items())


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("max_norm", [1.0, 1e6], ids=["clips", "no-op"])
def test_clip_grad_norm_of_16_bit_gradients_is_torchs(dtype, max_norm, monkeypatch):
    """16-bit gradients (a bf16 model's): fastopt.torch.clip_grad_norm_ gives torch's norm
    and gradients (it raised TypeError: fastopt's norm kernels take float32/float64)."""
    gen = torch.Generator().manual_seed(9)
    grads = [(torch.randn(n, generator=gen) * 10).to(dtype) for n in (100, 7, 1025)]
    ours = [torch.nn.Parameter(torch.zeros(g.shape, dtype=dtype)) for g in grads]
    refs = [torch.nn.Parameter(torch.zeros(g.shape, dtype=dtype)) for g in grads]
    for a, b, g in zip(ours, refs, grads):
        a.grad, b.grad = g.clone(), g.clone()
    import fastopt.torch._base as base
    monkeypatch.setattr(base, "_warned", set())   # the warning is once per process
    with pytest.warns(UserWarning, match="clip_grad_norm_.*torch.nn.utils.clip_grad_norm_"):
        got = fot.clip_grad_norm_((p for p in ours), max_norm)   # a generator, as torch takes
    want = torch.nn.utils.clip_grad_norm_(refs, max_norm)
    assert got.dtype == want.dtype == dtype and torch.equal(got, want)
    for a, b in zip(ours, refs):
        assert torch.equal(a.grad.view(torch.int16), b.grad.view(torch.int16))
    ours[0].grad[0] = float("nan")
    with pytest.raises(RuntimeError, match="non-finite"):
        fot.clip_grad_norm_(ours, max_norm, error_if_nonfinite=True)
