"""Write the 8-bit maps, bucket tables and thresholds for phases512.cpp."""
import sys
from pathlib import Path

import numpy as np

from fastopt import quantized as q

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
for signed, tag in ((True, "s"), (False, "u")):
    table = q.qmap(signed)
    table.astype(np.float32).tofile(out / f"map_{tag}.bin")
    q.code_table(table, signed).astype(np.int32).tofile(out / f"lut_{tag}.bin")
    q.thresholds(table).astype(np.float32).tofile(out / f"thr_{tag}.bin")
print("tables in", out)
