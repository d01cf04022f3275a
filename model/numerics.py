"""Compiled arithmetic shared by the populations' day kernels.

The per-day work of every population runs in small Numba kernels over its arrays (the populations'
modules hold their own kernels; this module holds what they share). Two rules keep results exact and
independent of the machine:

- No fast-math: operations are IEEE double precision in the order written, so the compiler may not
  reassociate sums or fuse multiply-adds, and results do not depend on the CPU's vector width.
- Sums are taken in a fixed order. :func:`psum` is NumPy's own pairwise summation (the algorithm of
  ``numpy.add.reduce`` on a contiguous float64 array), so a kernel
  that replaces ``a.sum()`` gives the same bits; ``np.bincount``-style accumulations add in index order.
  Dot products are pairwise sums of products, never BLAS (whose kernel, and so whose last bits, depends
  on the CPU).
"""

from __future__ import annotations

import numba
import numpy as np

_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": False}


def kernel(fn):
    """Compile ``fn`` as a day kernel (cached on disk, IEEE arithmetic, NumPy's division semantics)."""
    return numba.njit(**_OPTIONS)(fn)


@kernel
def _block(a, lo, n):
    """NumPy's pairwise-sum leaf for ``a[lo:lo + n]``, n <= 128: 8 running sums, combined as a tree,
    then the remainder in order."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    m = n - (n % 8)
    i = 8
    while i < m:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@kernel
def psum(a):
    """``a.sum()`` for a 1-D float64 array, bit for bit as NumPy computes it: blocks of at most 128
    (:func:`_block`), longer ranges halved (rounded down to a multiple of 8) and the halves added. The
    recursion runs on an explicit stack."""
    n = a.shape[0]
    if n <= 128:
        return 0.0 + _block(a, 0, n)  # 0.0 + x: NumPy starts from +0.0 (the sign of a zero sum)
    los = np.empty(64, np.int64)
    ns = np.empty(64, np.int64)
    stage = np.zeros(64, np.int8)
    left = np.empty(64)
    sp = 0
    los[0] = 0
    ns[0] = n
    ret = 0.0
    while sp >= 0:
        cn = ns[sp]
        if cn <= 128:
            ret = _block(a, los[sp], cn)
            sp -= 1
            continue
        n2 = cn // 2
        n2 -= n2 % 8
        if stage[sp] == 0:
            stage[sp] = 1
            los[sp + 1] = los[sp]
            ns[sp + 1] = n2
            stage[sp + 1] = 0
            sp += 1
        elif stage[sp] == 1:
            left[sp] = ret
            stage[sp] = 2
            los[sp + 1] = los[sp] + n2
            ns[sp + 1] = cn - n2
            stage[sp + 1] = 0
            sp += 1
        else:
            ret = left[sp] + ret
            sp -= 1
    return 0.0 + ret


@kernel
def psum_at(a, idx):
    """``a[idx].sum()`` (gather, then NumPy's summation order)."""
    tmp = np.empty(idx.shape[0])
    for k in range(idx.shape[0]):
        tmp[k] = a[idx[k]]
    return psum(tmp)


@kernel
def pdot_at(a, idx, w):
    """``(a[idx] * w).sum()`` (gather, multiply, then NumPy's summation order)."""
    tmp = np.empty(idx.shape[0])
    for k in range(idx.shape[0]):
        tmp[k] = a[idx[k]] * w[k]
    return psum(tmp)


@kernel
def pdot(a, b):
    """Dot product of two 1-D arrays as the pairwise sum of their products (machine-independent)."""
    tmp = np.empty(a.shape[0])
    for k in range(a.shape[0]):
        tmp[k] = a[k] * b[k]
    return psum(tmp)


@kernel
def bincount(idx, w, n):
    """``np.bincount(idx, w, minlength=n)``: weights added in index order."""
    out = np.zeros(n)
    for k in range(idx.shape[0]):
        out[idx[k]] += w[k]
    return out
