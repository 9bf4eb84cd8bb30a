"""grad_norm's bits on the cpp backend: one hash over every norm type, size,
magnitude and dtype; run it before and after a change of the norm loop and
compare the hashes (FASTOPT_NUM_THREADS=1 and =2 take different splits)."""
import hashlib, numpy as np, fastopt

sizes = [0, 1, 3, 7, 15, 16, 17, 31, 32, 33, 63, 1023, 1024, 4097, 65535, 65537,
         262145, 1_000_003, 3_000_017]
h = hashlib.sha256()
rng = np.random.default_rng(1)
count = 0
for dtype in (np.float32, np.float64):
    for n in sizes:
        base = rng.standard_normal(n)
        for scale in (1e-30, 1.0, 1e30):
            g = (base * scale).astype(dtype)
            lists = [g, [g, (base[: n // 3] * scale * 0.5).astype(dtype)]]
            for grads in lists:
                for p in (2.0, 1.0, float("inf"), 3.0):
                    r = fastopt.grad_norm(grads, norm_type=p, backend="cpp")
                    h.update(np.float64(r).tobytes()); count += 1
print(count, h.hexdigest())
