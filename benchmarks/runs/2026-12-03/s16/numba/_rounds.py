"""The timing loop of this directory's split scripts: every variant in turn, ``rounds``
times, ``calls`` calls each; CPU time per call in us, the median round."""
import time


def medians(variants, calls=20000, rounds=15):
    res = {k: [] for k, _ in variants}
    for _ in range(rounds):
        for name, f in variants:
            t0 = time.process_time()
            for _ in range(calls):
                f()
            res[name].append((time.process_time() - t0) / calls * 1e6)
    return {k: sorted(v)[len(v) // 2] for k, v in res.items()}
