import numpy as np, fastopt, hashlib, sys
rng = np.random.default_rng(3)
for shape in [(33, 17), (300, 60), (64, 32, 64), (7, 3, 5), (1000, 30)]:
    for dt in (np.float32, np.float64):
        x = (rng.standard_normal(shape) * 3 + 5).astype(dt); C = shape[1]
        g, b = np.ones(C, dt), np.zeros(C, dt); rm, rv = np.zeros(C, dt), np.ones(C, dt)
        y, sm, si = fastopt.batch_norm_forward(x, g, b, rm, rv, backend="cpp")
        h = hashlib.sha1(b"".join(np.ascontiguousarray(a).tobytes() for a in (y, sm, si, rm, rv))).hexdigest()[:12]
        W = int(np.prod(shape[1:])); print(shape, np.dtype(dt).name, "R<=sub" if shape[0] <= max(8, 32768 // W) else "R>sub", h)
