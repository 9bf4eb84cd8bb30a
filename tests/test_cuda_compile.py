"""The CUDA sources compile, without a GPU.

* nvcc (when on PATH): every ``csrc/cuda/*.cu`` to a cubin for sm_90 (Hopper)
  and sm_80 (Ampere), with the options the run-time compile uses, so a syntax
  or include error fails CI. Register spills are reported as failures too.
* NVRTC (when its library can be loaded, e.g. ``pip install nvidia-cuda-nvrtc``
  or a CUDA toolkit): the exact text ``fastopt.backends.cuda.loader`` hands to
  ``cupy.RawModule``, with the same options, to PTX. NVRTC differs from nvcc
  (no ``cuda_runtime.h``, no host headers), so this checks the path users run.
"""
import ctypes
import ctypes.util
import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fastopt.backends.cuda import loader

ROOT = Path(__file__).resolve().parents[1]
CUDA_DIR = ROOT / "csrc" / "cuda"
INCLUDE_DIR = ROOT / "csrc" / "include"
CU_FILES = sorted(CUDA_DIR.glob("*.cu"))
ARCHS = ["sm_90", "sm_80"]
FMA_FROM_LIBRARY = {"clipping.cu"}

NVCC = shutil.which("nvcc")


def _require_headers(cu):
    """Every header a .cu file includes must be in the tree: a missing one
    fails here with its name, before the compiler's less direct message."""
    loader.included_files(cu, (CUDA_DIR, INCLUDE_DIR))


def test_sources_found():
    assert CU_FILES, "no csrc/cuda/*.cu"
    assert loader.source_dirs((ROOT / "csrc",)) == (CUDA_DIR, INCLUDE_DIR)


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH: CUDA sources not compiled")
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("cu", CU_FILES, ids=lambda p: p.name)
def test_nvcc_compiles(cu, arch, tmp_path):
    _require_headers(cu)
    cmd = [NVCC, *loader.NVRTC_OPTIONS, f"-I{INCLUDE_DIR}", f"-I{CUDA_DIR}", f"-arch={arch}",
           "-cubin", "-Xptxas", "-v", "-Werror", "all-warnings", "-o", str(tmp_path / "out.cubin"),
           str(cu)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stdout}\n{res.stderr}"
    # a few bytes of spill on an older architecture are tolerable; more means
    # an array went to local memory (a run-time index, a too-large unroll)
    spills = [line for line in res.stderr.splitlines()
              if (m := re.search(r"(\d+) bytes spill (stores|loads)", line)) and int(m.group(1)) > 64]
    assert not spills, "register spills:\n" + "\n".join(spills)


# --------------------------------------------------------------------- NVRTC
def _load_nvrtc():
    """ctypes handle on libnvrtc, or the reason none was found."""
    try:
        import cuda.pathfinder as pathfinder  # ships with cupy >= 14
        return ctypes.CDLL(pathfinder.load_nvidia_dynamic_lib("nvrtc").abs_path)
    except Exception:
        pass
    candidates = [ctypes.util.find_library("nvrtc")]
    for base in filter(None, [os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"),
                              "/usr/local/cuda"]):
        candidates += sorted(glob.glob(os.path.join(base, "lib64", "libnvrtc.so*")))
    for site in sys.path:
        candidates += sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib", "libnvrtc.so*")))
    for c in filter(None, candidates):
        try:
            return ctypes.CDLL(c)
        except OSError:
            continue
    return "libnvrtc not found (pip install nvidia-cuda-nvrtc, or a CUDA toolkit)"


def nvrtc_compile(lib, source, options, name="kernel.cu"):
    """(ok, log, ptx) from NVRTC."""
    prog = ctypes.c_void_p()
    c = ctypes.c_char_p
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), c(source.encode()), c(name.encode()), 0,
                                None, None)
    assert rc == 0, f"nvrtcCreateProgram: {rc}"
    try:
        opts = (c * len(options))(*[o.encode() for o in options])
        rc = lib.nvrtcCompileProgram(prog, len(options), opts)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace")
        ptx = b""
        if rc == 0:
            lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
            pbuf = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetPTX(prog, pbuf)
            ptx = pbuf.value
        return rc == 0, log, ptx.decode(errors="replace")
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


_NVRTC = _load_nvrtc()


@pytest.mark.skipif(isinstance(_NVRTC, str), reason=str(_NVRTC))
@pytest.mark.parametrize("arch", ["compute_90", "compute_80"])
@pytest.mark.parametrize("cu", CU_FILES, ids=lambda p: p.name)
def test_nvrtc_compiles_assembled_source(cu, arch):
    _require_headers(cu)
    dirs = (CUDA_DIR, INCLUDE_DIR)
    source = loader.assemble_source(cu.stem, dirs)
    options = [*loader.compile_options(dirs), f"-arch={arch}"]
    ok, log, ptx = nvrtc_compile(_NVRTC, source, options, name=cu.name)
    assert ok, log
    # --fmad=false: no contracted multiply-adds (docs/reference.md s.2). pow() from
    # libdevice (clipping.cu's general p-norm) uses fma inside by design: that is
    # the library's own rounding, not a contraction of fastopt's arithmetic.
    if cu.name not in FMA_FROM_LIBRARY:
        assert not re.search(r"\bfma\.rn\.f(32|64)\b", ptx)
    # every extern "C" entry point is there
    entries = set(re.findall(r"\.entry\s+(\w+)", ptx))
    declared = set(re.findall(r"\b(fastopt_\w+?_)##SUFFIX", cu.read_text()))
    assert declared or entries, "no entry points found"
    for stem in declared:
        for sfx in ("f32", "f64"):
            assert f"{stem}{sfx}" in entries, f"{stem}{sfx} missing from {sorted(entries)}"


@pytest.mark.skipif(isinstance(_NVRTC, str), reason=str(_NVRTC))
def test_optim_uses_16_byte_vector_loads():
    dirs = (CUDA_DIR, INCLUDE_DIR)
    ok, log, ptx = nvrtc_compile(_NVRTC, loader.assemble_source("optim", dirs),
                                 [*loader.compile_options(dirs), "-arch=compute_90"], "optim.cu")
    assert ok, log
    assert "ld.global.v4.f32" in ptx and "ld.global.v2.f64" in ptx
    assert "st.global.v4.f32" in ptx and "st.global.v2.f64" in ptx


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH: CUDA sources not compiled")
@pytest.mark.parametrize("suffix,vec,packs", [("f32", "v4.f32", 2), ("f64", "v2.f64", 4)])
def test_dropout_forward_loads_all_packs_before_storing(suffix, vec, packs, tmp_path):
    """The dropout forward issues every load of a mask byte's 8 values before
    its first store, on the 16-byte path and on the unaligned (coalesced,
    shuffled) path (a load after a store had to wait for it: issue 15)."""
    out = tmp_path / "dropout.ptx"
    cmd = [NVCC, *loader.NVRTC_OPTIONS, f"-I{INCLUDE_DIR}", f"-I{CUDA_DIR}", "-arch=sm_90",
           "-ptx", "-o", str(out), str(CUDA_DIR / "dropout.cu")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    ptx = out.read_text()
    body = ptx[ptx.index(f".entry fastopt_dropout_forward_{suffix}"):]
    body = body[:body.index("\n}\n")]
    ops = re.findall(rf"\b(ld|st)\.global\.{re.escape(vec)}\b", body)
    assert ops == ["ld"] * packs + ["st"] * packs, ops
    # the unaligned path: 8 scalar loads, then 8 stores
    scalar = "".join(op[0] for op in re.findall(rf"\b(ld|st)\.global\.{vec[-3:]}\s", body))
    assert "l" * 8 + "s" * 8 in scalar, scalar
