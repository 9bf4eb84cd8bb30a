"""The timer of this directory's call-cost scripts: best of 5 blocks of k calls, us a call."""
import time


def best_us(fn, k):
    fn()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        best = min(best, (time.perf_counter() - t0) / k * 1e6)
    return best
