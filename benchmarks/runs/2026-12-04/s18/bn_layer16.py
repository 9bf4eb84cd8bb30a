"""fastopt.torch.BatchNorm1d(256) forward + backward on (64, 256), float32 and bfloat16, against
torch.nn.BatchNorm1d on the same input in float32. Best of 5 x 200, us.
Run: PYTHONPATH=. python benchmarks/runs/2026-12-04/s18/bn_layer16.py"""
import sys; sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _timing import best_us
import torch, fastopt.torch as fot
torch.set_num_threads(2)
for dt in (torch.float32, torch.bfloat16):
    x = torch.randn(64, 256).to(dt).requires_grad_()
    bn = fot.BatchNorm1d(256)
    tb = torch.nn.BatchNorm1d(256)
    if dt != torch.float32:
        pass
    def f():
        y = bn(x); y.sum().backward()
    def g():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
            y = tb(x.float() if dt != torch.float32 else x); y.sum().backward()
    print(str(dt), "fastopt.torch.BatchNorm1d fwd+bwd %.1f us" % best_us(f, 200),
          "torch.nn (float32 compute) %.1f us" % best_us(g, 200))
