"""fastopt.torch under torch.distributed: DDP, ZeroRedundancyOptimizer and FSDP2
``fully_shard``, 2 processes on loopback with gloo, CPU. Each run trains the
same model with torch.optim.Adam and with fastopt.torch.Adam; the parameters
must agree to fp32 rounding and be identical across ranks."""
import os
import socket
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch built without distributed", allow_module_level=True)

WORKER = r'''
import os, sys, warnings
import torch, torch.distributed as dist
import fastopt.torch as ft

mode, rank = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(1)
dist.init_process_group("gloo", rank=rank, world_size=2)


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))


def train(make_opt):
    m = model()
    if mode == "ddp":
        m = torch.nn.parallel.DistributedDataParallel(m)
    elif mode == "fsdp2":
        from torch.distributed.fsdp import fully_shard
        for layer in m:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer)
        fully_shard(m)
    opt = make_opt(m.parameters())
    g = torch.Generator().manual_seed(10 + rank)
    for _ in range(8):
        x, y = torch.randn(16, 8, generator=g), torch.randn(16, 4, generator=g)
        opt.zero_grad()
        torch.nn.functional.mse_loss(m(x), y).backward()
        opt.step()
    if mode == "fsdp2":
        return [p.full_tensor().detach() for p in m.parameters()]
    return [p.detach().clone() for p in m.parameters()]


if mode == "zero":
    from torch.distributed.optim import ZeroRedundancyOptimizer as Z
    mode = "ddp"
    ref = train(lambda ps: Z(ps, optimizer_class=torch.optim.Adam, lr=0.01))
    ours = train(lambda ps: Z(ps, optimizer_class=ft.Adam, lr=0.01))
else:
    ref = train(lambda ps: torch.optim.Adam(ps, lr=0.01))
    ours = train(lambda ps: ft.Adam(ps, lr=0.01))
for a, b in zip(ref, ours):
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
flat = torch.cat([b.reshape(-1) for b in ours])
other = flat.clone()
dist.broadcast(other, 0)
assert torch.equal(flat, other), "ranks differ"
dist.destroy_process_group()
print("ok", rank)
'''


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["ddp", "zero", "fsdp2"])
def test_two_ranks_match_torch(mode, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", FASTOPT_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(script), mode, str(r)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(2)]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=240)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for r, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0 and f"ok {r}" in out, out[-3000:]
