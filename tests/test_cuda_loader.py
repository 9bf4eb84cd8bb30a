"""The pure-Python parts of the CUDA loader, which need no GPU and no cupy:
source assembly and header hashing, typed launch arguments, chunking and the
multi-tensor pointer table, the table cache, and the availability message."""
import importlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import fastopt
from fastopt import backends as _backends, _scalars
from fastopt.backends.cuda import loader

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ sources
def _tree(tmp_path, header_text="int h;\n"):
    cuda = tmp_path / "cuda"
    inc = tmp_path / "include" / "fastopt"
    cuda.mkdir(parents=True)
    inc.mkdir(parents=True)
    (inc / "common.h").write_text(header_text)
    (inc / "optim.h").write_text('#include "fastopt/common.h"\nint o;\n')
    (cuda / "helper.cuh").write_text('#include "fastopt/common.h"\n')
    (cuda / "optim.cu").write_text('#include "fastopt/optim.h"\n#include "helper.cuh"\nint k;\n')
    return cuda, tmp_path / "include"


def test_included_files_transitive_and_deduplicated(tmp_path):
    cuda, inc = _tree(tmp_path)
    found = loader.included_files(cuda / "optim.cu", (cuda, inc))
    names = [p.name for p in found]
    assert sorted(names) == ["common.h", "helper.cuh", "optim.h"] and len(names) == 3


def test_missing_include_raises(tmp_path):
    cuda, inc = _tree(tmp_path)
    (cuda / "optim.cu").write_text('#include "fastopt/nope.h"\n')
    with pytest.raises(FileNotFoundError, match="nope.h"):
        loader.included_files(cuda / "optim.cu", (cuda, inc))


def test_source_hash_changes_with_any_header(tmp_path):
    cuda, inc = _tree(tmp_path)
    a = loader.assemble_source("optim", (cuda, inc))
    assert a == loader.assemble_source("optim", (cuda, inc))       # stable
    (inc / "fastopt" / "common.h").write_text("int h2;\n")         # a nested header
    b = loader.assemble_source("optim", (cuda, inc))
    (cuda / "helper.cuh").write_text('#include "fastopt/common.h"\n// edit\n')
    c = loader.assemble_source("optim", (cuda, inc))
    assert len({a, b, c}) == 3
    body = (cuda / "optim.cu").read_text()
    for s in (a, b, c):
        first, second, rest = s.split("\n", 2)
        assert re.fullmatch(r"// fastopt optim\.cu; included headers sha256 [0-9a-f]{64}", first)
        assert second == '#line 1 "optim.cu"'
        assert rest == body


def test_real_sources_assemble():
    dirs = loader.source_dirs((ROOT / "csrc",))
    assert dirs is not None
    sources = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))
    assert {cu.stem for cu in sources} >= {"optim", "batchnorm", "dropout", "averaging", "clipping"}
    for cu in sources:   # every family's headers are there: a missing one is a failure
        src = loader.assemble_source(cu.stem, dirs)
        assert src.endswith(cu.read_text())
    opts = loader.compile_options(dirs)
    assert opts[:2] == ("-std=c++17", "--fmad=false")
    assert f"-I{dirs[1]}" in opts and f"-I{dirs[0]}" in opts


def test_source_dirs_prefers_first_complete_root(tmp_path):
    cuda, inc = _tree(tmp_path)
    assert loader.source_dirs((tmp_path / "missing", tmp_path)) == (cuda, inc)
    assert loader.source_dirs((tmp_path / "missing",)) is None


# --------------------------------------------------------------- arguments
def test_pack_args_exact_types():
    class FakeArray:
        class data:
            ptr = 256
    arr = FakeArray()
    out = loader.pack_args("pTTiq", (arr, 0.1, 2, True, 3), np.float32)
    assert out[0] is arr
    assert type(out[1]) is np.float32 and out[1] == np.float32(0.1)
    assert type(out[2]) is np.float32
    assert type(out[3]) is np.int32 and out[3] == 1
    assert type(out[4]) is np.int64
    out = loader.pack_args("T", (0.1,), np.float64)
    assert type(out[0]) is np.float64 and out[0] == 0.1
    out = loader.pack_args("dQp", (0.1, 2**64 - 1, None), np.float32)
    assert type(out[0]) is np.float64 and out[0] == 0.1
    assert type(out[1]) is np.uint64 and out[1] == 2**64 - 1
    assert type(out[2]) is np.uint64 and out[2] == 0          # null pointer


def test_pack_args_rejects_bad_values():
    with pytest.raises(TypeError):
        loader.pack_args("TT", (1.0,), np.float32)           # count
    with pytest.raises(TypeError):
        loader.pack_args("p", (np.zeros(3),), np.float32)     # a host array is no pointer
    with pytest.raises(TypeError):
        loader.pack_args("T", ("1.0",), np.float32)
    with pytest.raises(TypeError):
        loader.pack_args("T", (True,), np.float32)
    with pytest.raises(OverflowError):
        loader.pack_args("i", (2**31,), np.float32)
    with pytest.raises(OverflowError):
        loader.pack_args("Q", (-1,), np.float32)
    with pytest.raises(ValueError):
        loader.pack_args("x", (1,), np.float32)


def test_optim_kernel_specs_match_the_cu_signatures():
    """Argument counts in fastopt/backends/cuda/optim.py agree with csrc/cuda/optim.cu."""
    optim = importlib.import_module("fastopt.backends.cuda.optim")
    text = (ROOT / "csrc" / "cuda" / "optim.cu").read_text()
    for name, spec in optim.KERNELS.items():
        m = re.search(rf"fastopt_{name}_##SUFFIX\((.*?)\)\s*\{{", text, re.S)
        assert m, name
        params = [p.strip() for p in m.group(1).replace("\\", " ").split(",")]
        assert params[0] == "FASTOPT_TABLE_ARGS"
        params = params[1:]
        codes = "".join("T" if p.startswith("T ") else "i" if p.startswith("int ") else "?"
                        for p in params)
        assert spec == "ppiq" + codes, (name, spec, codes)
    fields = {"sgd": _scalars.SgdScalars, "rmsprop": _scalars.RmspropScalars,
              "adam": _scalars.AdamScalars, "adagrad": _scalars.AdagradScalars}
    for name, cls in fields.items():
        m = re.search(rf"fastopt_{name}_##SUFFIX\((.*?)\)\s*\{{", text, re.S)
        names = [p.split()[-1] for p in m.group(1).replace("\\", " ").split(",")[1:]
                 if p.strip().startswith("T ")]
        assert tuple(names) == cls._fields, name


# ---------------------------------------------------------------- chunking
@pytest.mark.parametrize("sizes", [[], [0], [1], [5, 0, 9], [8, 8, 8], [17, 100, 3, 64]])
@pytest.mark.parametrize("chunk", [4, 8, 32])
def test_plan_chunks_covers_every_element_once(sizes, chunk):
    plan = loader.plan_chunks(sizes, chunk)
    assert plan.dtype == np.int32 and plan.shape[1:] == (2,)
    covered = [np.zeros(s, int) for s in sizes]
    for t, c in plan:
        begin = c * chunk
        end = min(begin + chunk, sizes[t])
        assert begin < end
        covered[t][begin:end] += 1
    for cov in covered:
        assert (cov == 1).all()
    assert len(plan) == sum(-(-s // chunk) for s in sizes)


def test_plan_chunks_rejects_bad_chunk():
    with pytest.raises(ValueError):
        loader.plan_chunks([10], 6)
    with pytest.raises(ValueError):
        loader.plan_chunks([10], 0)


def test_pack_table_layout():
    rows = [(0x1000, 0x2000, 0, 0, 0), (0x3004, 0x4000, 0x5000, 0, 0), (0x6000, 0x7000)]
    sizes = [10, 3, 0]
    words, n_tensors, n_chunks = loader.pack_table(rows, sizes, chunk_size=4)
    assert words.dtype == np.int64 and n_tensors == 3 and n_chunks == 3 + 1
    entries = words[:n_tensors * loader.TENSOR_ENTRY_WORDS].reshape(n_tensors, -1).view(np.uint64)
    assert list(entries[0, :5]) == [0x1000, 0x2000, 0, 0, 0]
    assert list(entries[2, :5]) == [0x6000, 0x7000, 0, 0, 0]
    assert list(entries[:, 5]) == sizes
    assert list(entries[:, 6]) == [1, 0, 1]            # 0x3004 is not 16-byte aligned
    assert (entries[:, 7] == 0).all()
    chunks = words[n_tensors * loader.TENSOR_ENTRY_WORDS:].view("<i4").reshape(-1, 2)
    assert chunks.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0]]
    assert words.nbytes == n_tensors * 64 + n_chunks * 8   # sizeof(TensorEntry), sizeof(ChunkEntry)


def test_pack_table_rejects_bad_rows():
    with pytest.raises(ValueError):
        loader.pack_table([(1, 2, 3, 4, 5, 6)], [1])
    with pytest.raises(ValueError):
        loader.pack_table([(16,)], [1, 2])


def test_table_cache_is_lru():
    cache = loader.TableCache(maxsize=2)
    built = []

    def make(v):
        def build():
            built.append(v)
            return v
        return build
    assert cache.get("a", make("A")) == "A"
    assert cache.get("a", make("X")) == "A"      # hit: not rebuilt
    cache.get("b", make("B"))
    cache.get("a", make("X"))                     # a is now most recent
    cache.get("c", make("C"))                     # evicts b
    assert len(cache) == 2
    cache.get("b", make("B2"))
    assert built == ["A", "B", "C", "B2"]


def test_grid_constants_consistent_with_cuh():
    text = (ROOT / "csrc" / "cuda" / "multi_tensor.cuh").read_text()
    assert f"kBlockThreads = {loader.BLOCK_THREADS};" in text
    assert f"kRoles = {loader.ROLES};" in text
    assert f"kUnitsPerChunk = {loader.UNITS_PER_CHUNK};" in text
    assert loader.CHUNK_SIZE % (4 * loader.UNITS_PER_CHUNK) == 0   # units of whole float4s
    assert loader.CHUNK_SIZE % 4 == 0
    from fastopt.backends.cuda import batchnorm, dropout
    bn = (ROOT / "csrc" / "cuda" / "batchnorm.cu").read_text()
    assert f"kBnThreads = {batchnorm.THREADS};" in bn      # kBnWarps assumes this block size
    do = (ROOT / "csrc" / "cuda" / "dropout.cu").read_text()
    assert f"kDropoutThreads = {dropout.THREADS};" in do


# ------------------------------------------------------------ availability
def test_unavailable_reason_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)     # import cupy -> ImportError
    why = loader.unavailable_reason()
    assert why is not None and "cupy" in why and "fastopt[cuda]" in why


def test_info_reports_cuda_status():
    state = fastopt.info()["backends"]["cuda"]
    why = _backends.unavailable_reason("cuda")
    assert state == ("available" if why is None else why)
    if why is not None:
        assert "cuda" not in fastopt.available_backends()
        with pytest.raises(RuntimeError, match="unavailable"):
            _backends.module("optim", "cuda")


# ------------------------------------------- kernel signatures vs arg specs
_MACROS = {"FASTOPT_TABLE_ARGS": "ppiq", "FASTOPT_BN_SHAPE": "qqqqq"}


def _code(param):
    param = " ".join(param.replace("\\", " ").split())
    if param in _MACROS:
        return _MACROS[param]
    if "*" in param:
        return "p"
    typ = param.rsplit(" ", 1)[0]
    # fastopt::compute_t<T>: the element type's compute type (float for 16-bit storage)
    # float: the 8-bit kernels' scalars (quantized.cu), launched with dtype float32
    return {"T": "T", "fastopt::compute_t<T>": "T", "float": "T", "double": "d", "int": "i",
            "long long": "q", "unsigned long long": "Q"}[typ]


def kernel_signatures(text):
    """{entry point name (with ##SUFFIX or plain): spec} parsed from a .cu file."""
    out = {}
    for m in re.finditer(r"\b(fastopt_\w+?)(?:##SUFFIX)?\s*\(([^)]*)\)\s*\{", text):
        name, params = m.group(1), m.group(2)
        if "__global__" not in text[max(0, m.start() - 200):m.start()]:
            continue
        out[name] = "".join(_code(p) for p in params.split(",") if p.strip())
    return out


@pytest.mark.parametrize("family, source", [("optim", "optim"), ("batchnorm", "batchnorm"),
                                            ("dropout", "dropout"), ("averaging", "averaging"),
                                            ("clipping", "clipping"),
                                            ("quantized", "quantized")])
def test_backend_arg_specs_match_kernel_signatures(family, source):
    """Every KERNELS spec in fastopt/backends/cuda/<family>.py equals the C parameter
    list of its entry point in csrc/cuda/<source>.cu: a mismatch would pass wrong
    bytes to the GPU."""
    mod = importlib.import_module(f"fastopt.backends.cuda.{family}")
    sigs = kernel_signatures((ROOT / "csrc" / "cuda" / f"{source}.cu").read_text())
    prefix = {"optim": "fastopt_", "batchnorm": "fastopt_bn_", "dropout": "fastopt_dropout_",
              "averaging": "fastopt_", "clipping": "fastopt_", "quantized": "fastopt_"}[family]
    assert sigs
    for name, spec in mod.KERNELS.items():
        candidates = [f"{prefix}{name}_", f"{prefix}{name}", f"{prefix}{name}_8bit_"]
        found = [c for c in candidates if c in sigs]
        assert found, (name, sorted(sigs))
        assert sigs[found[0]] == spec, (family, name, sigs[found[0]], spec)


# ------------------------------------------- table upload without a host sync
class _FakeEvent:
    def __init__(self):
        self.done = False


class _FakeStream:
    def __init__(self, ptr):
        self.ptr, self.calls = ptr, []

    def synchronize(self):
        self.calls.append("synchronize")

    def record(self):
        ev = _FakeEvent()
        self.calls.append(("record", ev))
        return ev

    def wait_event(self, ev):
        self.calls.append(("wait_event", ev))


class _FakeDevArray:
    def __init__(self, n, dtype):
        self.size, self.uploads = n, []
        self.host = np.zeros(n, dtype)

    def set(self, arr, stream=None):
        self.uploads.append((arr, stream))
        self.host[...] = arr

    def __getitem__(self, sl):
        return self.host[sl]


class _FakeArr:
    def __init__(self, ptr, size):
        class data:
            pass
        data.ptr = ptr
        self.data, self.size = data, size


def _fake_cupy(monkeypatch):
    import types
    cp = types.ModuleType("cupy")
    cp.cuda = types.SimpleNamespace()
    state = types.SimpleNamespace(stream=_FakeStream(7), pinned=[], arrays=[])

    def alloc_pinned_memory(n):
        buf = bytearray(n)
        state.pinned.append(buf)
        return buf

    def empty(n, dtype):
        a = _FakeDevArray(n, dtype)
        state.arrays.append(a)
        return a
    cp.cuda.alloc_pinned_memory = alloc_pinned_memory
    cp.cuda.get_current_stream = lambda: state.stream
    cp.cuda.Device = lambda: types.SimpleNamespace(id=0)
    cp.empty = empty
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setattr(loader, "_tables", loader.TableCache())
    monkeypatch.setattr(loader, "_staging", [])
    return state


def test_table_upload_is_async_from_pinned_memory(monkeypatch):
    """A pointer-table cache miss uploads from page-locked memory on the current
    stream, records an event and never synchronizes (issue 15: the old
    stream.synchronize() waited for everything queued, e.g. a backward pass);
    another stream using the table waits on the event, on the GPU."""
    st = _fake_cupy(monkeypatch)
    arrays = [[_FakeArr(4096 * (i + 1), 10) for i in range(3)], None, None, None, None]
    t = loader.device_table(arrays, chunk_size=4)
    up = st.stream
    assert "synchronize" not in up.calls
    (dev,) = st.arrays
    (src, stream), = dev.uploads
    assert stream is up and np.shares_memory(src, np.frombuffer(st.pinned[0], np.int64))
    words, _, _ = loader.pack_table([(4096 * (i + 1),) for i in range(3)], [10] * 3, 4)
    np.testing.assert_array_equal(dev.host, words)
    event = up.calls[-1][1]
    assert loader._staging and loader._staging[0][0] is event     # pinned buffer kept alive
    # a hit on the same stream: nothing to order
    assert loader.device_table(arrays, chunk_size=4) is t and up.calls == [("record", event)]
    # a hit on another stream before the upload is done: a device-side wait
    st.stream = other = _FakeStream(9)
    loader.device_table(arrays, chunk_size=4)
    assert other.calls == [("wait_event", event)]
    event.done = True
    loader.device_table(arrays, chunk_size=4)
    assert other.calls == [("wait_event", event)] and t.upload is None
    assert len(st.arrays) == 1                                    # built once


def test_stepping_many_tensors_one_by_one_hits_the_cache(monkeypatch):
    """More than 64 tensors stepped one at a time: each table is built once
    (the old 64-entry LRU rebuilt, and synchronized, on every call)."""
    st = _fake_cupy(monkeypatch)
    tensors = [_FakeArr(256 * (i + 1), 100) for i in range(300)]
    for _ in range(3):
        for a in tensors:
            loader.device_table([[a], [a], None, None, None])
    assert len(st.arrays) == 300 and len(loader._tables) == 300
    assert "synchronize" not in st.stream.calls


def test_table_cache_bounded_by_words():
    cache = loader.TableCache(maxsize=100, max_words=10)

    class V:
        def __init__(self, n):
            self.words = np.zeros(n)
    for k in range(5):
        cache.get(k, lambda: V(4))
    assert len(cache) == 2                     # 2 x 4 words <= 10 < 3 x 4
    assert cache.get(4, lambda: V(99)).words.size == 4


def test_resident_grid_is_occupancy_times_sms(monkeypatch):
    """The multi-tensor grid is the blocks resident at once (occupancy x SMs, one
    query per device and kernel), at most one block per work unit; without the
    occupancy query it falls back to the capped grid."""
    import types
    cp = types.ModuleType("cupy")
    asked = []

    def occupancy(func, block, smem):
        asked.append((func, block, smem))
        return 3
    dev = types.SimpleNamespace(id=0, attributes={"MultiProcessorCount": 132})
    cp.cuda = types.SimpleNamespace(Device=lambda: dev, driver=types.SimpleNamespace(
        occupancyMaxActiveBlocksPerMultiprocessor=occupancy))
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setattr(loader, "_resident", {})
    monkeypatch.setattr(loader, "_sm_counts", {})
    monkeypatch.setattr(loader, "kernel", lambda family, name: types.SimpleNamespace(
        kernel=types.SimpleNamespace(ptr=1234)))
    assert loader.multi_tensor_grid("optim", "fastopt_adam_f32", 3052) == 3 * 132
    assert loader.multi_tensor_grid("optim", "fastopt_adam_f32", 10) == 10 * loader.UNITS_PER_CHUNK
    assert asked == [(1234, loader.BLOCK_THREADS, 0)]               # cached per kernel
    loader.resident_grid("optim", "fastopt_sgd_f32", 5)
    assert len(asked) == 2

    def broken(*a):
        raise AttributeError("no occupancy API")
    cp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor = broken
    assert loader.resident_grid("optim", "fastopt_rmsprop_f32", 10**9) == \
        132 * loader.BLOCKS_PER_SM


def test_bench_cuda_prints_every_target_beside_its_figure(monkeypatch):
    """benchmarks/bench_cuda.py's target table (no GPU: a stand-in cupy): each of
    the issue's targets with fastopt's figure, the reference and whether it is met."""
    import types
    cp = types.ModuleType("cupy")
    cp.ElementwiseKernel = lambda *a: None
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.delitem(sys.modules, "bench_cuda", raising=False)
    import bench_cuda
    results = [{"cell": "adam-1e8", "ms": {"fastopt": 0.7, "torch.Adam(fused).step": 0.8},
                "GB/s": {"fastopt": 4000.0, "torch.Adam(fused).step": 3500.0}},
               {"cell": "bn", "note": "unavailable"},
               {"cell": "dropout", "ms": {"fastopt": 0.3, "torch": 0.25},
                "GB/s": {"fastopt": 2000.0, "torch": 2400.0}}]
    rows = bench_cuda.target_lines(results, 4300.0)[3:]
    assert len(rows) == len(bench_cuda.TARGETS) == 5
    assert rows[0].startswith("| >= 90% of copy bandwidth | adam-1e8 | 0.700 ms") and \
        rows[0].endswith("| yes |")                                   # 4000 >= 3870
    assert "torch.Adam(fused).step 0.800 ms" in rows[1] and rows[1].endswith("| yes |")
    assert rows[2].endswith("| not measured |") and rows[3].endswith("| not measured |")
    assert rows[4].endswith("| NO |")                                 # 0.30 ms > 0.25 ms
