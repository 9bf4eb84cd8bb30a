"""The timer of this directory's call-cost scripts: CPU time (``process_time``), best of
``rounds`` blocks of ``n`` calls, us a call."""
import time


def best_us(fn, n=20000, rounds=15):
    best = 1e9
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t) / n)
    return best * 1e6
