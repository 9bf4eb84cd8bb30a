"""fastopt.torch against torch.optim on torch's own optimizer database.

Every CPU config that ``torch.testing._internal.common_optimizers`` lists for
SGD, RMSprop, Adam, AdamW and Adagrad (``optim_inputs_func`` plus the global
foreach / fused / differentiable variants), in float32 and float64, runs 30
steps with ``torch.optim.X`` and with ``fastopt.torch.X`` on the same
parameters: a 0-d, a 1-element, an empty, a channels_last conv weight, a
transposed and a strided (``[..., 0]``) one, and a complex one, with some
gradients None on some steps and one gradient whose strides differ from its
parameter's. Parameters, every state tensor and step counts must agree.

Tolerances: both sides evaluate the same formula; only the operation order
differs. Each step's ~10 operations round to 6e-8 (float32) / 1e-16 (float64)
relative; 30 steps through divisions by sqrt of small second moments amplify
that on the few elements whose update nearly cancels (seen: 9e-5 relative,
8e-5 absolute on a momentum buffer of fused SGD in float32; 2e-10 / 2e-12 in float64). Hence rtol 1e-4 /
atol 1e-4 (float32) and rtol 1e-9 / atol 1e-10 (float64).
"""
import warnings

import pytest

torch = pytest.importorskip("torch")
co = pytest.importorskip("torch.testing._internal.common_optimizers")
import fastopt.torch as ft  # noqa: E402

NAMES = ("SGD", "RMSprop", "Adam", "AdamW", "Adagrad")
INFOS = {info.optim_cls.__name__: info for info in co.optim_db
         if info.optim_cls.__name__ in NAMES}
DTYPES = (torch.float32, torch.float64)
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-9, atol=1e-10)}


def _configs():
    out = []
    for name in NAMES:
        for dtype in DTYPES:
            inputs = co._get_optim_inputs_including_global_cliquey_kwargs("cpu", dtype,
                                                                         INFOS[name])
            for oi in inputs:
                out.append(pytest.param(name, dtype, oi.kwargs,
                                        id=f"{name}-{str(dtype)[6:]}-{oi.desc}"))
    return out


def _params(dtype, seed):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)
    cplx = torch.complex64 if dtype == torch.float32 else torch.complex128
    return [
        r(()),                                                     # 0-d
        r(1),                                                      # 1 element
        r(0),                                                      # empty
        r(4, 3, 3, 3).to(memory_format=torch.channels_last),       # channels_last
        r(5, 7).t(),                                               # transposed (dense)
        r(10, 5, 2)[..., 0],                                       # strided view (gaps)
        r(17),
        torch.randn(6, generator=g, dtype=cplx),                   # complex
    ]


def _make(dtype, seed, kwargs):
    ps = [torch.nn.Parameter(t) for t in _params(dtype, seed)]
    if kwargs.get("fused"):
        # torch's fused kernels take no complex, and step a non-dense parameter (whose
        # autograd gradient is contiguous) wrongly: test_fused_with_grad_laid_out_unlike_param
        del ps[5]
        del ps[-1]
    return ps


def _loss(ps, k):
    """Smooth and well conditioned (phases shift with k, frequencies do not), so
    that rounding differences are not amplified from step to step."""
    total = 0
    for i, p in enumerate(ps):
        if p.is_complex():
            total = total + (p.abs() ** 2).sum() * 0.3 + (p.real + 0.1 * k).sin().sum()
        else:
            total = total + (p * (1 + 0.1 * i) + 0.1 * k).sin().sum() + 0.05 * (p ** 2).sum()
    return total


def _run(cls, ps, kwargs, steps=30):
    if kwargs.get("differentiable"):
        # torch's differentiable step works in place on tensors autograd may write
        # (not leaves that require grad): plain tensors, gradients set by hand
        ps[:] = [p.detach() for p in ps]
    opt = cls(ps, **kwargs)
    for k in range(steps):
        opt.zero_grad()
        xs = [p.detach().requires_grad_() for p in ps]
        _loss(xs, k).backward()
        for p, x in zip(ps, xs):
            p.grad = x.grad
        if k % 5 == 3:
            ps[1].grad = None           # some grads are None on some steps
        if k % 4 == 1:
            ps[3].grad = None
        if k % 2 == 0 and not kwargs.get("fused"):
            # a gradient laid out unlike its parameter (torch 2.13's CPU fused kernels
            # get this wrong: test_fused_with_grad_laid_out_unlike_param)
            ps[4].grad = ps[4].grad.contiguous()
        opt.step()
    return opt


def _compare(o1, ps1, o2, ps2, tol):
    for a, b in zip(ps1, ps2):
        assert a.stride() == b.stride()
        torch.testing.assert_close(b.detach(), a.detach(), **tol)
    for a, b in zip(ps1, ps2):
        s1, s2 = o1.state.get(a, {}), o2.state.get(b, {})
        assert sorted(s1) == sorted(s2)
        for k in s1:
            if isinstance(s1[k], torch.Tensor):
                assert s2[k].dtype == s1[k].dtype, k
                torch.testing.assert_close(s2[k], s1[k], **tol)
                if k != "step" and not (isinstance(o1, torch.optim.SGD) and not o1.defaults["fused"]):
                    # (torch's SGD clones its first gradient: the grad's layout)
                    assert s2[k].stride() == s1[k].stride() or s1[k].numel() <= 1, k
            else:
                assert s2[k] == s1[k]


@pytest.mark.parametrize("name,dtype,kwargs", _configs())
def test_every_torch_config_matches(name, dtype, kwargs):
    ps1, ps2 = _make(dtype, 0, kwargs), _make(dtype, 0, kwargs)
    o1 = _run(getattr(torch.optim, name), ps1, kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # differentiable=True falls back, with a warning
        o2 = _run(getattr(ft, name), ps2, kwargs)
    _compare(o1, ps1, o2, ps2, TOL[dtype])


def _error_cases():
    out = []
    for name in NAMES:
        info = INFOS[name]
        for dtype in DTYPES:
            for j, e in enumerate(info.optim_error_inputs_func("cpu", dtype)):
                for impl in ("torch", "fastopt"):
                    out.append(pytest.param(impl, name, dtype, j,
                                            id=f"{impl}-{name}-{str(dtype)[6:]}-{j}"))
    return out


@pytest.mark.parametrize("impl,name,dtype,j", _error_cases())
def test_torch_error_inputs(impl, name, dtype, j):
    """torch's error table, on torch.optim (the control) and on fastopt.torch."""
    e = INFOS[name].optim_error_inputs_func("cpu", dtype)[j]
    cls = getattr(torch.optim if impl == "torch" else ft, name)
    oi = e.optimizer_error_input
    params = oi.params
    if params is None:
        params = [torch.nn.Parameter(torch.randn(2, 2, dtype=dtype))]
    expect = (pytest.warns(e.error_type, match=e.error_regex)
              if issubclass(e.error_type, Warning)
              else pytest.raises(e.error_type, match=e.error_regex))
    if e.error_on == co.OptimizerErrorEnum.CONSTRUCTION_ERROR:
        with expect:
            cls(params, **oi.kwargs)
    else:
        opt = cls(params, **oi.kwargs)
        with expect:
            opt.step()


@pytest.mark.parametrize("layout", ["transposed", "strided"])
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad"])
def test_fused_with_grad_laid_out_unlike_param(name, layout):
    """torch 2.13's CPU fused kernels step a parameter whose gradient has other
    strides wrongly (a transposed one with a contiguous gradient, a strided view,
    whose autograd gradient is contiguous); fastopt.torch with fused=True matches
    torch's single-tensor (correct) result."""
    kw = dict(lr=0.1, momentum=0.9) if name == "SGD" else dict(lr=0.1)
    base = torch.randn(7, 5, 2, dtype=torch.float64)
    out = {}
    for impl, cls, fused in (("ref", getattr(torch.optim, name), False),
                             ("ours", getattr(ft, name), True)):
        t = base.clone()
        p = torch.nn.Parameter(t[..., 0] if layout == "strided"
                               else t[..., 0].t().contiguous().t())   # (7, 5), strides (1, 7)
        opt = cls([p], fused=fused, **kw)
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            p.grad = torch.randn(7, 5, generator=g, dtype=torch.float64)   # contiguous
            opt.step()
        out[impl] = p.detach()
    torch.testing.assert_close(out["ours"], out["ref"], rtol=1e-12, atol=1e-12)
