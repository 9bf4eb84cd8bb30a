"""The timer of this directory's call-cost scripts: best of ``rounds`` blocks of ``n``
calls, us a call. CPU time (``process_time``) by default; wall clock
(``clock=time.perf_counter``) where other threads run (torch's OpenMP team, fastopt's
polling workers), whose CPU time would count."""
import time


def best_us(fn, n=20000, rounds=15, clock=time.process_time):
    best = 1e9
    for _ in range(rounds):
        t = clock()
        for _ in range(n):
            fn()
        best = min(best, (clock() - t) / n)
    return best * 1e6
