"""Loading and launching the CUDA kernels (``csrc/cuda/*.cu``) through ``cupy.RawModule``.

The ``.cu`` files include the same ``csrc/include/fastopt/*.h`` headers as the
CPU code. They ship inside the package (``fastopt/backends/cuda/src/``, installed by
CMake) and are compiled by NVRTC at first use, one module per kernel family,
with ``-std=c++17 --fmad=false -I<include dirs>``. CuPy caches the binary on
disk keyed by the source text and the options, but it does not read ``-I``
headers: :func:`assemble_source` therefore prepends the sha256 of every header
the file includes, so editing a header recompiles.

Everything here that needs no GPU (finding the sources, hashing headers,
packing launch arguments, the multi-tensor pointer table and its chunking) is
plain Python and NumPy, unit-tested in ``tests/test_cuda_loader.py``; cupy is
imported only when a kernel is compiled or launched.
"""
from __future__ import annotations

import collections
import hashlib
import os
import re
import threading
from pathlib import Path

import numpy as np

_PKG_SRC = Path(__file__).resolve().parent / "src"                 # installed wheel
_REPO_SRC = Path(__file__).resolve().parents[3] / "csrc"            # source checkout

NVRTC_OPTIONS = ("-std=c++17", "--fmad=false")
BLOCK_THREADS = 256          # kBlockThreads in csrc/cuda/multi_tensor.cuh
CHUNK_SIZE = 32768           # elements per chunk of the multi-tensor kernels (multiple of 4)
TENSOR_ENTRY_WORDS = 8       # int64 words per TensorEntry in multi_tensor.cuh
ROLES = 5                    # pointer roles per tensor
BLOCKS_PER_SM = 32           # grid cap, in blocks per multiprocessor (blocks loop over chunks)
UNITS_PER_CHUNK = 8          # kUnitsPerChunk in multi_tensor.cuh: work units of 4096 elements
TABLE_CACHE_SIZE = 4096      # tables kept (a one-tensor table is ~100 bytes of device memory)
TABLE_CACHE_WORDS = 1 << 24  # and at most 128 MiB of them

_INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)


# ------------------------------------------------------------------ sources
def source_dirs(roots=None):
    """``(cuda_dir, include_dir)`` holding ``optim.cu`` and ``fastopt/common.h``, or None.

    Looks in the installed package data first, then in the source checkout
    (``PYTHONPATH=.`` development runs).
    """
    for root in roots if roots is not None else (_PKG_SRC, _REPO_SRC):
        root = Path(root)
        cuda_dir, include_dir = root / "cuda", root / "include"
        if (cuda_dir / "optim.cu").is_file() and (include_dir / "fastopt" / "common.h").is_file():
            return cuda_dir, include_dir
    return None


def included_files(path, search_dirs):
    """Every file ``path`` includes with ``#include "..."``, transitively, each once.

    A quoted include resolves against the including file's folder, then
    ``search_dirs`` (as nvcc and NVRTC's ``-I`` do). Raises FileNotFoundError
    for one found nowhere: the compiler would fail on it too.
    """
    seen: list[Path] = []
    stack = [Path(path)]
    while stack:
        current = stack.pop()
        names = _INCLUDE_RE.findall(current.read_text())
        found = []
        for name in names:
            for base in (current.parent, *map(Path, search_dirs)):
                candidate = (base / name).resolve()
                if candidate.is_file():
                    break
            else:
                raise FileNotFoundError(f"{current}: cannot find included file {name!r} "
                                        f"in {[str(d) for d in search_dirs]}")
            if candidate not in seen:
                seen.append(candidate)
                found.append(candidate)
        stack.extend(reversed(found))
    return seen


def headers_digest(paths, relative_to=()):
    """sha256 over the names and texts of ``paths`` (order-independent)."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        name = p.name
        for base in relative_to:
            try:
                name = str(p.relative_to(Path(base).resolve()))
                break
            except ValueError:
                pass
        data = p.read_bytes()
        h.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


def assemble_source(family, dirs=None):
    """The text handed to NVRTC for ``csrc/cuda/<family>.cu``: a comment with the
    sha256 of its included headers, then the file unchanged (``#line`` keeps
    compiler messages pointing at the real file)."""
    dirs = dirs or source_dirs()
    if dirs is None:
        raise FileNotFoundError("fastopt's CUDA sources are missing (neither fastopt/backends/cuda/src "
                                "nor csrc/ next to the package)")
    cuda_dir, include_dir = dirs
    path = Path(cuda_dir) / f"{family}.cu"
    headers = included_files(path, (cuda_dir, include_dir))
    digest = headers_digest(headers, relative_to=(include_dir, cuda_dir))
    return (f"// fastopt {family}.cu; included headers sha256 {digest}\n"
            f'#line 1 "{path.name}"\n' + path.read_text())


def compile_options(dirs=None):
    cuda_dir, include_dir = dirs or source_dirs()
    return NVRTC_OPTIONS + (f"-I{include_dir}", f"-I{cuda_dir}")


# ------------------------------------------------------------ availability
def unavailable_reason():
    """None when a GPU, cupy and NVRTC work here, else why not (the original error)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install under cupy
        return (f"cupy is not importable (pip install 'fastopt[cuda]' for CUDA 13, "
                f"'fastopt[cuda12]' for CUDA 12): {type(exc).__name__}: {exc}")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"no usable CUDA device (driver/runtime error): {type(exc).__name__}: {exc}"
    if count == 0:
        return "no CUDA device found"
    try:
        cupy.cuda.nvrtc.getVersion()
    except Exception as exc:
        return f"NVRTC (CUDA's run-time compiler) is unavailable: {type(exc).__name__}: {exc}"
    if source_dirs() is None:
        return "fastopt's CUDA kernel sources are missing from the installation"
    return None


def describe():
    """Device and library versions for ``fastopt.info()`` (call only when available)."""
    import cupy
    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return {"device": f"{dev.id}: {name} (sm_{props['major']}{props['minor']}, "
                      f"{props['multiProcessorCount']} SMs)",
            "cupy": cupy.__version__,
            "nvrtc": ".".join(map(str, cupy.cuda.nvrtc.getVersion())),
            "driver": cupy.cuda.runtime.driverGetVersion()}


# ------------------------------------------------------------------ modules
_lock = threading.Lock()
_modules: dict[str, object] = {}


def module(family):
    """The ``cupy.RawModule`` of ``csrc/cuda/<family>.cu`` (compiled at first kernel fetch)."""
    mod = _modules.get(family)
    if mod is None:
        import cupy
        with _lock:
            mod = _modules.get(family)
            if mod is None:
                dirs = source_dirs()
                mod = cupy.RawModule(code=assemble_source(family, dirs),
                                     options=compile_options(dirs), backend="nvrtc")
                _modules[family] = mod
    return mod


_kernels: dict[tuple[str, str], object] = {}


def kernel(family, name):
    k = _kernels.get((family, name))
    if k is None:
        k = module(family).get_function(name)
        _kernels[(family, name)] = k
    return k


# --------------------------------------------------------- launch arguments
_INT_TYPES = {"i": (np.int32, -2**31, 2**31 - 1), "q": (np.int64, -2**63, 2**63 - 1),
              "Q": (np.uint64, 0, 2**64 - 1)}


def pack_args(spec, values, dtype):
    """The kernel arguments as the exact types the C signature declares.

    ``spec`` has one letter per argument: ``p`` a device array (its data
    pointer; ``None`` passes a null pointer), ``T`` a scalar of the element
    type ``dtype`` (float32 or float64), ``d`` a double whatever ``dtype``,
    ``i`` an int (int32), ``q`` a long long (int64), ``Q`` an unsigned long
    long (uint64). CuPy itself
    would pass a Python float as a double and an int as an int64 whatever the
    kernel declares, so every scalar is converted here, and a value a type
    cannot hold raises instead of wrapping.
    """
    if len(spec) != len(values):
        raise TypeError(f"kernel takes {len(spec)} arguments ({spec}), got {len(values)}")
    dtype = np.dtype(dtype)
    out = []
    for code, value in zip(spec, values):
        if code == "p":
            if value is None:
                out.append(np.uint64(0))
                continue
            if not hasattr(value, "data") or not hasattr(value.data, "ptr"):
                raise TypeError(f"expected a device array, got {type(value).__name__}")
            out.append(value)
        elif code in ("T", "d"):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"expected a real scalar, got {type(value).__name__}")
            out.append(dtype.type(value) if code == "T" else np.float64(value))
        elif code in _INT_TYPES:
            typ, low, high = _INT_TYPES[code]
            value = int(value)
            if not low <= value <= high:
                raise OverflowError(f"{value} does not fit the kernel's {typ.__name__} argument")
            out.append(typ(value))
        else:
            raise ValueError(f"unknown argument code {code!r}")
    return tuple(out)


# ------------------------------------------------------- multi-tensor table
def plan_chunks(sizes, chunk_size=CHUNK_SIZE):
    """``(n_chunks, 2)`` int32 rows ``(tensor, chunk)``: chunk ``c`` of tensor ``t``
    covers elements ``[c * chunk_size, min((c + 1) * chunk_size, sizes[t]))``.
    Empty tensors get no chunk."""
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
    if chunk_size <= 0 or chunk_size % 4:
        raise ValueError("chunk_size must be a positive multiple of 4 (the float4 width)")
    counts = -(-sizes // chunk_size)
    total = int(counts.sum())
    if total > 2**31 - 1 or (sizes.size and int(counts.max()) > 2**31 - 1):
        raise ValueError("too many chunks for one launch")
    tensor = np.repeat(np.arange(sizes.size, dtype=np.int32), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    chunk = (np.arange(total, dtype=np.int64) - starts).astype(np.int32)
    return np.stack([tensor, chunk], axis=1) if total else np.zeros((0, 2), np.int32)


def pack_table(ptr_rows, sizes, chunk_size=CHUNK_SIZE):
    """Host image of the table the multi-tensor kernels read.

    ``ptr_rows[t]`` holds the data pointers of tensor ``t``'s roles (0 for an
    unused role, at most ``ROLES``), ``sizes[t]`` its element count. Returns
    ``(words, n_tensors, n_chunks)``: one int64 array holding the
    ``TensorEntry`` rows (pointers, size, vec_ok, 0) followed by the
    ``ChunkEntry`` pairs (two int32 per int64 word, little-endian as the GPU
    reads them).
    """
    n = len(ptr_rows)
    if len(sizes) != n:
        raise ValueError("one size per tensor")
    entries = np.zeros((n, TENSOR_ENTRY_WORDS), dtype=np.uint64)
    for t, row in enumerate(ptr_rows):
        if len(row) > ROLES:
            raise ValueError(f"at most {ROLES} pointer roles per tensor")
        entries[t, :len(row)] = [int(p) for p in row]
        entries[t, ROLES] = int(sizes[t])
        entries[t, ROLES + 1] = int(all(int(p) % 16 == 0 for p in row))
    chunks = plan_chunks(sizes, chunk_size)
    chunk_words = np.ascontiguousarray(chunks.astype("<i4")).view("<i8").reshape(-1)
    words = np.concatenate([entries.view(np.int64).reshape(-1), chunk_words.astype(np.int64)])
    return words, n, len(chunks)


class Table:
    """A pointer table resident on the device: ``tensors`` and ``chunks`` views.

    ``upload`` is ``(event, stream)`` while the asynchronous upload may still
    be in flight, else None.
    """

    __slots__ = ("words", "tensors", "chunks", "n_tensors", "n_chunks", "upload")

    def __init__(self, words, n_tensors, n_chunks, upload=None):
        self.words, self.n_tensors, self.n_chunks = words, n_tensors, n_chunks
        split = n_tensors * TENSOR_ENTRY_WORDS
        self.tensors, self.chunks = words[:split], words[split:]
        self.upload = upload

    def ready_for(self, stream):
        """Orders ``stream`` after the table's upload without blocking the host:
        nothing on the upload stream itself (stream order), else an event wait,
        or nothing once the upload is known to be done."""
        if self.upload is None:
            return
        event, upload_stream = self.upload
        if stream.ptr == upload_stream.ptr:
            return
        if event.done:
            self.upload = None
        else:
            stream.wait_event(event)


class TableCache:
    """LRU of device tables keyed by (device, chunk size, pointers, sizes),
    holding at most ``maxsize`` tables and ``max_words`` int64 words.

    The key is the table's whole content, so a hit is always a correct table,
    whatever was freed or reallocated in between. The bounds are large enough
    that stepping a few thousand tensors one by one hits every time.
    """

    def __init__(self, maxsize=TABLE_CACHE_SIZE, max_words=TABLE_CACHE_WORDS):
        self.maxsize, self.max_words = maxsize, max_words
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._words = 0
        self._lock = threading.Lock()

    def __len__(self):
        return len(self._items)

    def get(self, key, build):
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        value = build()
        with self._lock:
            old = self._items.pop(key, None)
            self._words -= _size_words(old)
            self._items[key] = value
            self._words += _size_words(value)
            while len(self._items) > 1 and (len(self._items) > self.maxsize
                                            or self._words > self.max_words):
                _, gone = self._items.popitem(last=False)
                self._words -= _size_words(gone)
        return value


def _size_words(value):
    words = getattr(value, "words", None)
    return 0 if words is None else int(words.size)


_tables = TableCache()
_staging: list = []      # (event, pinned host buffer) of uploads possibly in flight


def _stage(words):
    """``words`` copied into page-locked host memory: a copy from it is truly
    asynchronous (from pageable memory cudaMemcpyAsync first waits for the
    stream, i.e. for everything queued on it, such as a whole backward pass)."""
    import cupy
    mem = cupy.cuda.alloc_pinned_memory(words.nbytes)
    pinned = np.frombuffer(mem, np.int64, words.size)
    pinned[...] = words
    return pinned


def device_table(role_lists, chunk_size=CHUNK_SIZE):
    """The device table for ``role_lists`` (one list of cupy arrays per role,
    ``None`` for an unused role; all on the current device), cached.

    A new table is uploaded from pinned memory on the current stream with no
    host synchronization; an event orders any other stream that uses it
    before the upload completes (:meth:`Table.ready_for`).
    """
    import cupy
    count = len(role_lists[0])
    ptrs = [[0] * count if arrays is None else [a.data.ptr for a in arrays] for arrays in role_lists]
    rows = tuple(tuple(col) for col in zip(*ptrs))
    sizes = tuple(a.size for a in role_lists[0])
    key = (cupy.cuda.Device().id, chunk_size, rows, sizes)
    stream = cupy.cuda.get_current_stream()

    def build():
        words, n_tensors, n_chunks = pack_table(rows, sizes, chunk_size)
        pinned = _stage(words)
        dev = cupy.empty(words.size, dtype=np.int64)
        dev.set(pinned, stream=stream)
        event = stream.record()
        # the pinned buffer must outlive the copy: kept until its event is done
        _staging[:] = [(e, b) for e, b in _staging if not e.done]
        _staging.append((event, pinned))
        return Table(dev, n_tensors, n_chunks, (event, stream))

    table = _tables.get(key, build)
    table.ready_for(stream)
    return table


_sm_counts: dict[int, int] = {}


def grid_size(n_blocks_wanted):
    """At most ``BLOCKS_PER_SM`` blocks per multiprocessor; blocks loop over the rest."""
    import cupy
    dev = cupy.cuda.Device()
    sms = _sm_counts.get(dev.id)
    if sms is None:
        sms = _sm_counts[dev.id] = int(dev.attributes["MultiProcessorCount"])
    return max(1, min(int(n_blocks_wanted), sms * BLOCKS_PER_SM))


_resident: dict = {}   # (device, family, kernel, block) -> blocks resident per SM


def resident_grid(family, name, n_blocks_wanted, block=BLOCK_THREADS):
    """A persistent grid: the blocks of kernel ``name`` that are resident at once
    (``cuOccupancyMaxActiveBlocksPerMultiprocessor`` x SMs, read once per device and
    kernel), at most ``n_blocks_wanted``; blocks loop over the rest. A grid of
    several waves ends with a partial one (up to a wave's time lost at 10^8 Adam
    elements); this one has no second wave. Falls back to :func:`grid_size` where
    the occupancy query is unavailable."""
    import cupy
    dev = cupy.cuda.Device()
    key = (dev.id, family, name, int(block))
    per_sm = _resident.get(key)
    if per_sm is None:
        try:
            per_sm = int(cupy.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(
                kernel(family, name).kernel.ptr, int(block), 0))
        except Exception:   # an older cupy without the query: the capped grid
            per_sm = 0
        _resident[key] = per_sm
    if per_sm <= 0:
        return grid_size(n_blocks_wanted)
    sms = _sm_counts.get(dev.id)
    if sms is None:
        sms = _sm_counts[dev.id] = int(dev.attributes["MultiProcessorCount"])
    return max(1, min(int(n_blocks_wanted), per_sm * sms))


def multi_tensor_grid(family, name, n_chunks):
    """The grid of a multi-tensor kernel over ``n_chunks`` table chunks: one block per
    work unit (``UNITS_PER_CHUNK`` a chunk) up to the resident blocks."""
    return resident_grid(family, name, n_chunks * UNITS_PER_CHUNK)


_SYNC = os.environ.get("FASTOPT_CUDA_SYNC", "") not in ("", "0")


def capturing():
    """True while the current stream is capturing a CUDA graph."""
    import cupy
    return bool(cupy.cuda.get_current_stream().is_capturing())


def refuse_capture(what):
    """RuntimeError when the current stream is capturing a CUDA graph.

    fastopt passes every scalar (lr, bias corrections, step, seed) by value: a
    graph would freeze the captured values, so replaying a captured optimizer
    step would repeat that one step forever. Until a ``capturable`` mode keeps
    step and lr in device memory, such calls refuse capture instead.
    """
    if capturing():
        raise RuntimeError(f"{what} cannot be captured in a CUDA graph: its step-dependent "
                           f"scalars (lr, bias corrections) are kernel arguments passed by "
                           f"value, so every replay would repeat the captured step. Call it "
                           f"outside the capture.")


def launch(family, name, grid, block, spec, values, dtype, shared_mem=0):
    """Launches ``name`` of ``family`` on the current device's current stream.

    Arguments go through :func:`pack_args`. The launch's return code is
    checked by CuPy (an error raises ``CUDADriverError``); with
    ``FASTOPT_CUDA_SYNC=1`` the stream is also synchronized after each launch,
    so a fault inside the kernel raises at the call that caused it.
    """
    import cupy
    grid = tuple(int(g) for g in (grid if isinstance(grid, tuple) else (grid,)))
    block = tuple(int(b) for b in (block if isinstance(block, tuple) else (block,)))
    if not grid or min(grid) < 1 or grid[0] > 2**31 - 1 or any(g > 65535 for g in grid[1:]):
        raise ValueError(f"invalid grid {grid} for {name}")
    if not block or min(block) < 1 or int(np.prod(block)) > 1024:
        raise ValueError(f"invalid block {block} for {name}")
    args = pack_args(spec, values, dtype)
    kernel(family, name)(grid, block, args, shared_mem=shared_mem)
    if _SYNC:
        cupy.cuda.get_current_stream().synchronize()


def empty(shape, dtype):
    """A new uninitialised array on the current device (NumPy in the host emulation tests)."""
    import cupy
    return cupy.empty(shape, dtype=dtype)


def to_host(a):
    """A NumPy copy of a device array (waits for the current stream)."""
    import cupy
    return cupy.asnumpy(a)


def address(a):
    """Data pointer of a cupy array (or of a NumPy one, for the host emulation tests)."""
    if isinstance(a, np.ndarray):   # (a.data of an ml_dtypes.bfloat16 array raises)
        return a.ctypes.data
    return a.data.ptr


def device_of(arrays):
    """The cupy Device the (validated, same-device) arrays live on."""
    return arrays[0].device


def suffix(dtype):
    """The entry points' dtype suffix: f32, f64, and f16 / bf16 for the kernels that take
    16-bit arrays (batch norm, dropout; matched by the dtype's name, so that a bfloat16
    dtype from ml_dtypes maps without importing it)."""
    dtype = np.dtype(dtype)
    return {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16"}[dtype.name]
