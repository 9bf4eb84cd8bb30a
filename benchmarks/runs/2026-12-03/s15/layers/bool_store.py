"""Inductor's bool-mask store (torch 2.13, CPU): a compiled `x <= 0` on 2^20 float32
values, on random signs against all-positive and all-negative inputs. One thread,
best of 5 rounds of 50 calls. A store whose time depends on the values is a branch
per lane."""
import time
import torch

torch.set_num_threads(1)
le = torch.compile(lambda x: x <= 0)
copy = torch.compile(lambda x: x * 2.0)
x = torch.randn(2 ** 20)
cases = {"random signs": x, "all positive": x.abs() + 1, "all negative": -x.abs() - 1}


def best(f, a, n=50):
    f(a)
    t = 1e9
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            f(a)
        t = min(t, (time.perf_counter() - t0) / n)
    return t * 1e3


for name, a in cases.items():
    print(f"x <= 0 (bool out), {name:13s} {best(le, a):7.3f} ms   x * 2 (float out) {best(copy, a):7.3f} ms")
