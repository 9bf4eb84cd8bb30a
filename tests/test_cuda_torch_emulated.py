"""``fastopt.torch`` optimizers on the cuda backend's path, without a GPU.

The CUDA path of ``fastopt.torch`` (``_base.py`` with ``_cuda.py``: tensors as
cupy views, state made on the parameter's device, buckets per device, the
step plan with its cached gradient views, torch's stream around every launch)
runs here on CPU tensors: ``_cuda.on_gpu`` says every tensor is a CUDA one,
``_cuda.view`` / ``_cuda.unowned`` give ``FakeCupyArray`` views of the
tensors' memory, ``_cuda.torch_stream`` records that it is entered, and the
kernels are ``csrc/cuda/optim.cu`` compiled for the host (test_cuda_emulated's
``fake_cuda_backend``). So what runs is the real Python of the CUDA path and
the real kernel source, on host memory.

The results are compared with ``fastopt.torch`` on the C++ backend bit for bit
(same per-element header, same scalars) and with ``torch.optim`` to float32
rounding. What this cannot show: DLPack, cupy and torch's streams themselves
(tests/test_cuda.py checks those on a GPU).
"""
import contextlib

import numpy as np
import pytest

import fastopt
from test_cuda_emulated import CXX, FakeCupyArray, build_host, fake_cuda_backend

torch = pytest.importorskip("torch")
import fastopt.torch as ft  # noqa: E402
from fastopt.torch import _cuda  # noqa: E402

pytestmark = [pytest.mark.skipif(CXX is None, reason="no C++ compiler for the host emulation"),
              pytest.mark.skipif("cpp" not in fastopt.available_backends(),
                                 reason="C++ extension not built (the bit-for-bit reference)")]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    return build_host("optim", tmp_path_factory.mktemp("cuda_host_torch"))


class FakeTorchCuda:
    """Stand-ins for fastopt.torch._cuda: every tensor "on the GPU", views as FakeCupyArray."""

    def __init__(self):
        self.active = 0          # depth of torch_stream contexts entered
        self.entered = []        # devices torch_stream was entered for
        self.unowned = 0         # gradient views made (cached ones are not counted)

    def view(self, t):
        return t.detach().numpy().view(FakeCupyArray)

    def make_unowned(self, t):
        self.unowned += 1
        return self.view(t)

    @contextlib.contextmanager
    def torch_stream(self, device):
        self.entered.append(device)
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


@contextlib.contextmanager
def torch_on_fake_gpu(monkeypatch, lib):
    fake = FakeTorchCuda()
    monkeypatch.setattr(_cuda, "on_gpu", lambda t: True)
    monkeypatch.setattr(_cuda, "view", fake.view)
    monkeypatch.setattr(_cuda, "unowned", fake.make_unowned)
    monkeypatch.setattr(_cuda, "torch_stream", fake.torch_stream)
    with fake_cuda_backend(monkeypatch, lib) as e:
        inner = e.launch

        def launch(*args, **kw):   # every kernel inside torch's stream
            assert fake.active > 0, "a kernel launched outside torch's stream"
            return inner(*args, **kw)
        monkeypatch.setattr("fastopt.backends.cuda.loader.launch", launch)
        yield fake, e


CASES = [("Adam", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
         ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
         ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
         ("RMSprop", dict(lr=1e-2, centered=True, momentum=0.5)),
         ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1))]


def _params(seed, dtype=torch.float32):
    """A contiguous matrix, a transposed one (zero-copy in its memory order), a
    strided view (gathered and scattered back) and a long vector past one chunk."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(40, 6, generator=g, dtype=dtype)
    return [torch.randn(33, 7, generator=g, dtype=dtype),
            torch.randn(9, 5, generator=g, dtype=dtype).t(),
            base[:, ::2],
            torch.randn(32768 + 11, generator=g, dtype=dtype)]


def _trajectory(cls, kw, steps, backend, inplace_grads, seed=0):
    """``steps`` steps of fastopt.torch.<cls> (``backend``) or torch.optim.<cls> (None);
    gradients have their parameter's strides (new tensors or rewritten in place)."""
    params = [torch.nn.Parameter(p) for p in _params(seed)]
    opt = (getattr(ft, cls)(params, **kw, backend=backend) if backend
           else getattr(torch.optim, cls)(params, **kw))
    g = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        for p in params:
            new = torch.randn(p.shape, generator=g, dtype=p.dtype)
            if inplace_grads and p.grad is not None:
                p.grad.copy_(new)
            else:
                p.grad = torch.empty_strided(p.shape, p.stride(), dtype=p.dtype).copy_(new)
        opt.step()
    return params, opt


@pytest.mark.parametrize("inplace_grads", [True, False], ids=["same-grads", "new-grads"])
@pytest.mark.parametrize("cls,kw", CASES, ids=[c[0] for c in CASES])
def test_fastopt_torch_cuda_path_equals_cpp_and_torch(cls, kw, inplace_grads, emu, monkeypatch):
    """Four steps of fastopt.torch.<cls> through the CUDA path (plan from step 2
    on) equal fastopt.torch on the C++ backend bit for bit and torch.optim to
    float32 rounding; every launch ran inside torch's stream; one launch per
    step for the group's contiguous-in-memory-order tensors and state."""
    steps = 4
    want, _ = _trajectory(cls, kw, steps, "cpp", inplace_grads)
    ref, _ = _trajectory(cls, kw, steps, None, inplace_grads)
    with torch_on_fake_gpu(monkeypatch, emu) as (fake, e):
        got, opt = _trajectory(cls, kw, steps, "auto", inplace_grads)
    assert len(e.launches) == steps, e.launches
    assert fake.entered and fake.active == 0
    for p in opt.state:
        for name, t in opt.state[p].items():
            if name != "step":
                assert t.stride() == torch.zeros_like(p).stride(), name   # torch's layout
    for a, b, r in zip(got, want, ref):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)
        torch.testing.assert_close(a.detach(), r.detach(), rtol=1e-5, atol=1e-6)


def test_cuda_plan_reuses_gradient_views(emu, monkeypatch):
    """A CUDA step plan makes a gradient view once per parameter while the
    gradients keep their memory (cached by pointer, shape, dtype), a new one
    when a gradient moves, and runs through the plan (no re-validation)."""
    from fastopt import _validate
    params = [torch.nn.Parameter(torch.randn(n)) for n in (3, 1000, 40_000)]
    with torch_on_fake_gpu(monkeypatch, emu) as (fake, e):
        opt = ft.Adam(params, lr=1e-2)
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()                       # checked path: makes the plan
        assert opt._fo_plans and fake.unowned == 0
        calls = []
        real = _validate._arrays
        monkeypatch.setattr(_validate, "_arrays", lambda *a: calls.append(1) or real(*a))
        for _ in range(3):
            for p in params:
                p.grad.copy_(torch.randn_like(p))
            opt.step()
        assert fake.unowned == len(params) and calls == []
        params[1].grad = torch.randn_like(params[1])   # new memory: one new view
        opt.step()
        assert fake.unowned == len(params) + 1
    assert len(e.launches) == 5


def test_cuda_parameters_fall_back_with_a_cpu_backend(emu, monkeypatch):
    """backend='cpp' cannot take CUDA tensors: they run torch's own step, with
    a one-time warning naming why, and give torch's result."""
    ft._base._warned.clear()
    params = [torch.nn.Parameter(torch.randn(50))]
    ref = [torch.nn.Parameter(params[0].detach().clone())]
    with torch_on_fake_gpu(monkeypatch, emu) as (fake, e):
        opt = ft.Adam(params, lr=1e-2, backend="cpp")
        params[0].grad = torch.randn(50)
        ref[0].grad = params[0].grad.clone()
        with pytest.warns(UserWarning, match="CUDA parameters"):
            opt.step()
    torch.optim.Adam(ref, lr=1e-2).step()
    assert e.launches == []
    torch.testing.assert_close(params[0].detach(), ref[0].detach(), rtol=0, atol=0)


def test_mixed_dtypes_make_one_launch_each(emu, monkeypatch):
    """float32 and float64 parameters of one group: one list call per dtype, each
    equal to the C++ backend's result."""
    def run(backend):
        ps = [torch.nn.Parameter(torch.linspace(-1, 1, 100, dtype=d)) for d in
              (torch.float32, torch.float64, torch.float32)]
        opt = ft.SGD(ps, lr=0.1, momentum=0.9, backend=backend)
        for k in range(3):
            for p in ps:
                p.grad = torch.cos(p.detach() * (k + 1))
            opt.step()
        return ps
    want = run("cpp")
    with torch_on_fake_gpu(monkeypatch, emu) as (fake, e):
        got = run("auto")
    assert len(e.launches) == 6 and len(set(e.launches)) == 2
    for a, b in zip(got, want):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)


def test_real_cuda_module_names_and_no_gpu_here():
    """The real _cuda on CPU tensors: not on the GPU, a null stream context."""
    t = torch.zeros(3)
    assert not _cuda.on_gpu(t)
    with _cuda.stream_of([t]):
        pass
    assert np.shares_memory(ft._layout.as_array(t), t.numpy())
