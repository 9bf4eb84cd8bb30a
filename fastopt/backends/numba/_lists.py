"""The list ("multi-tensor") form for Numba: one njit call over many arrays.

A numba typed List of arrays costs ~150 us per array to build, so instead the
arrays travel as a table of data addresses (one row per role, one column per
tensor) and the kernels view each one with ``carray`` through a pointer cast.
The validated arrays stay referenced by the caller for the whole call.
"""
import numpy as np
from numba import types
from numba.core import cgutils  # noqa: F401  (imported for numba's extension API)
from numba.extending import intrinsic

CHUNK = 1 << 15   # elements per parallel work item; results do not depend on it


@intrinsic
def pointer_like(typingctx, address, witness):
    """``address`` (int64) as a pointer to ``witness``'s element type."""
    sig = types.CPointer(witness.dtype)(types.int64, witness)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


def table(*roles):
    """Addresses (roles x tensors, int64), sizes, and start offsets of the list form.

    ``roles`` are lists of arrays (param, grad, states...); a role that is None
    gets address 0 and is never read.
    """
    count = len(roles[0])
    addresses = np.zeros((len(roles), count), dtype=np.int64)
    for r, arrays in enumerate(roles):
        if arrays is not None:
            for t, a in enumerate(arrays):
                addresses[r, t] = a.__array_interface__["data"][0]
    sizes = np.fromiter((a.size for a in roles[0]), dtype=np.int64, count=count)
    starts = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    return addresses, sizes, starts
