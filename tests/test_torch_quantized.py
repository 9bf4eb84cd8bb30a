"""state_bits=8 in fastopt.torch's Adam/AdamW/SGD/RMSprop: which parameters get 8-bit
state, that the step equals fastopt's own 8-bit class bit for bit, exact resume
through torch's state_dict (and torch.save), bad state refused."""
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastopt  # noqa: E402
import fastopt.torch as ft  # noqa: E402

KW = {
    "Adam": dict(lr=1e-2),
    "AdamW": dict(lr=1e-2),
    "SGD": dict(lr=1e-2, momentum=0.9, nesterov=True),
    "RMSprop": dict(lr=1e-3, momentum=0.5, centered=True),
}
NUMPY_KW = dict(KW, AdamW=dict(lr=1e-2, weight_decay=1e-2))


def _params(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(5000, generator=g)),
            torch.nn.Parameter(torch.randn(100, generator=g)),
            torch.nn.Parameter(torch.randn(70, 70, generator=g))]


def _set_grads(ps, t):
    g = torch.Generator().manual_seed(1000 + t)
    for p in ps:
        p.grad = p.detach() * 0.5 + torch.randn(p.shape, generator=g)


@pytest.mark.parametrize("name", sorted(KW))
def test_large_params_get_codes_and_absmax(name):
    ps = _params(0)
    opt = getattr(ft, name)(ps, **KW[name], state_bits=8)
    _set_grads(ps, 0)
    opt.step()
    for p in ps:
        st = opt.state[p]
        codes = [k for k in st if k.endswith(".codes")]
        if p.numel() >= 4096:
            assert codes and all(st[k].dtype == torch.uint8 and st[k].shape == p.shape
                                 for k in codes)
            assert all(st[k[:-6] + ".absmax"].shape == ((p.numel() + 255) // 256,)
                       for k in codes)
        else:
            assert not codes and all(t.dtype == torch.float32 for k, t in st.items()
                                     if k != "step")


@pytest.mark.parametrize("name", sorted(KW))
def test_step_equals_fastopts_8bit_class(name):
    ps = _params(1)
    arrays = [p.detach().numpy().copy() for p in ps]
    opt = getattr(ft, name)(ps, **KW[name], state_bits=8)
    ref = getattr(fastopt, name)(arrays, **NUMPY_KW[name], state_bits=8)
    for t in range(5):
        _set_grads(ps, t)
        opt.step()
        ref.step([p.grad.numpy() for p in ps])
    for p, a in zip(ps, arrays):
        assert np.array_equal(p.detach().numpy().view(np.uint32), a.view(np.uint32))


@pytest.mark.parametrize("name", sorted(KW))
def test_resume_through_torch_save_is_exact(name):
    ps = _params(2)
    opt = getattr(ft, name)(ps, **KW[name], state_bits=8)
    for t in range(3):
        _set_grads(ps, t)
        opt.step()
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    qs = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    opt2 = getattr(ft, name)(qs, **KW[name], state_bits=8)
    buf.seek(0)
    opt2.load_state_dict(torch.load(buf))
    for t in range(3, 7):
        _set_grads(ps, t)
        _set_grads(qs, t)
        opt.step()
        opt2.step()
    for a, b in zip(ps, qs):
        assert torch.equal(a, b)


def test_8bit_state_moves_less_memory_and_tracks_float32():
    ps32, ps8 = _params(3), _params(3)
    o32, o8 = ft.Adam(ps32, lr=1e-3), ft.Adam(ps8, lr=1e-3, state_bits=8)
    for t in range(20):
        _set_grads(ps32, t)
        _set_grads(ps8, t)
        o32.step()
        o8.step()
    big8 = sum(x.numel() * x.element_size() for x in o8.state[ps8[0]].values() if x.dim())
    big32 = sum(x.numel() * x.element_size() for x in o32.state[ps32[0]].values() if x.dim())
    assert big8 / ps8[0].numel() <= 2.1 and big32 / ps32[0].numel() == 8
    # 20 steps of lr 1e-3: both moved about 0.02; they differ by far less
    moved = (ps32[0] - _params(3)[0]).abs().mean()
    assert (ps8[0] - ps32[0]).abs().mean() < 0.1 * moved


def test_bad_state_raises_and_writes_nothing():
    ps = _params(4)
    opt = ft.Adam(ps, state_bits=8)
    _set_grads(ps, 0)
    opt.step()
    opt.state[ps[0]]["exp_avg.absmax"] = torch.zeros(3)
    before = [p.detach().clone() for p in ps]
    with pytest.raises(ValueError, match="8-bit state"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, before))


def test_negative_absmax_in_a_loaded_state_is_refused():
    ps = _params(2)
    opt = ft.Adam(ps, state_bits=8)
    _set_grads(ps, 0)
    opt.step()
    sd = opt.state_dict()
    key = next(k for k in sd["state"][0] if k.endswith(".absmax"))
    sd["state"][0][key] = -sd["state"][0][key].abs() - 1.0
    before = {k: v.clone() for k, v in opt.state[ps[0]].items()}
    with pytest.raises(ValueError, match="absmax"):   # before: loaded, then turned the sign
        opt.load_state_dict(sd)
    assert all(torch.equal(opt.state[ps[0]][k], v) for k, v in before.items())
    sd["state"][0][key] = torch.full_like(sd["state"][0][key], float("nan"))
    opt.load_state_dict(sd)   # a diverged state still loads
    codes = next(k for k in sd["state"][0] if k.endswith(".codes"))
    sd["state"][0][codes] = sd["state"][0][codes].float() + 0.5
    with pytest.raises(ValueError, match="not codes"):
        opt.load_state_dict(sd)


def test_bad_state_bits_refused():
    with pytest.raises(ValueError, match="state_bits"):
        ft.Adam(_params(0), state_bits=4)
    with pytest.raises(ValueError, match="amsgrad"):
        ft.Adam(_params(0), amsgrad=True, state_bits=8)


def test_pickled_optimizer_keeps_8bit_state_and_loads():
    import copy
    ps = _params(5)
    opt = ft.Adam(ps, lr=1e-2, state_bits=8)
    _set_grads(ps, 0)
    opt.step()
    clone = copy.deepcopy(opt)
    assert clone._fo_bits == 8
    sd = copy.deepcopy(opt.state_dict())
    clone.load_state_dict(sd)   # torch casts the codes to float32; the hook undoes it
    st = next(iter(clone.state.values()))
    assert st["exp_avg.codes"].dtype == torch.uint8
