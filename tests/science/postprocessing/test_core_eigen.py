"""The leading-eigenpair routines behind annular PCA agree with numpy's full eigh."""

import numpy as np
import pytest

from hcdc.science.postprocessing import pca


def _symmetric_stack(rng, group=5, m=40):
    x = rng.normal(size=(group, m, 3 * m))
    return np.einsum("gij,gkj->gik", x, x)  # positive definite Gram matrices, like PCA's


def _check(values, vectors, stack, count):
    ref_values, ref_vectors = np.linalg.eigh(stack)
    np.testing.assert_allclose(values, ref_values[:, ::-1][:, :count], rtol=1e-10)
    # eigenvectors are defined up to sign
    dots = np.abs(np.einsum("gmc,gmc->gc", vectors, ref_vectors[:, :, ::-1][:, :, :count]))
    np.testing.assert_allclose(dots, 1.0, atol=1e-8)


@pytest.mark.parametrize("count", [1, 5, 20])
def test_f2py_leading_eigenpairs(count):
    stack = _symmetric_stack(np.random.default_rng(count))
    values, vectors = np.empty((5, count)), np.empty((5, 40, count))
    assert pca._dsyevr_leading_f2py(stack, count, values, vectors)
    _check(values, vectors, stack, count)


@pytest.mark.skipif(pca._DSYEVR_C is None, reason="scipy's Cython LAPACK table is not reachable here")
@pytest.mark.parametrize("count", [1, 5, 20])
def test_ctypes_leading_eigenpairs_match(count):
    stack = _symmetric_stack(np.random.default_rng(10 + count))
    values, vectors = np.empty((5, count)), np.empty((5, 40, count))
    assert pca._dsyevr_leading_ctypes(stack, count, values, vectors)
    _check(values, vectors, stack, count)


def test_leading_eigh_mixes_fast_and_full_paths():
    rng = np.random.default_rng(7)
    stacks = [_symmetric_stack(rng, group=20), _symmetric_stack(rng, group=3, m=10)]
    counts = [6, 8]  # the second needs more than half of m: full eigh
    for (values, vectors), stack, count in zip(
        pca._leading_eigh(stacks, counts), stacks, counts, strict=True
    ):
        _check(values, vectors, stack, count)
