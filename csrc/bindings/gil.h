// Releasing the GIL around a kernel, safely at interpreter exit.
//
// A daemon thread that finishes a kernel after the interpreter began to
// finalize is ended by CPython with pthread_exit when it asks for the GIL
// back. pthread_exit unwinds the stack, and unwinding through
// pybind11::gil_scoped_release's destructor (implicitly noexcept) calls
// std::terminate: "terminate called without an active exception", an abort
// instead of a clean exit. This guard instead parks such a thread (the
// process is exiting; exit() ends it), and its destructor may let the unwind
// through for the narrow race where finalization starts after the check.
#pragma once
#include <pybind11/pybind11.h>
#include <pythread.h>
#include <unistd.h>

namespace fastopt {

// The interpreter's main thread (set when the module loads): the thread that
// finalizes, which must never park (a __del__ may run a kernel at exit).
inline unsigned long& main_thread_ident() {
  static unsigned long ident = 0;
  return ident;
}

// True when this thread may no longer take the GIL back.
inline bool must_not_return_to_python() {
#if PY_VERSION_HEX >= 0x030D0000
  const bool finalizing = Py_IsFinalizing() != 0;
#else
  const bool finalizing = _Py_IsFinalizing() != 0;
#endif
  return finalizing && PyThread_get_thread_ident() != main_thread_ident();
}

class ReleaseGil {
 public:
  ReleaseGil() : state_(PyEval_SaveThread()) {}
  ReleaseGil(const ReleaseGil&) = delete;
  ReleaseGil& operator=(const ReleaseGil&) = delete;
  ~ReleaseGil() noexcept(false) {
    while (must_not_return_to_python()) pause();  // never returns: the process is exiting
    PyEval_RestoreThread(state_);
  }

 private:
  PyThreadState* state_;
};

}  // namespace fastopt
