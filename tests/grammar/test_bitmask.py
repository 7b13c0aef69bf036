"""Packed bitmask helpers (xgrammar layout: token i is bit i % 32 of word i // 32)."""

from __future__ import annotations

import numpy as np

from tines.grammar import (allocate_token_bitmask, apply_token_bitmask_numpy, bitmask_to_bool,
                           bool_to_bitmask, ids_to_bitmask)


def test_bool_bitmask_round_trip():
    rng = np.random.default_rng(0)
    mask = rng.random((4, 100)) < 0.3
    packed = bool_to_bitmask(mask)
    assert packed.shape == (4, 4) and packed.dtype == np.int32
    assert (bitmask_to_bool(packed, 100) == mask).all()


def test_bit_layout():
    packed = ids_to_bitmask([0, 31, 32, 65], 70)
    assert packed.tolist() == [1 | -(1 << 31), 1, 2]


def test_allocate_allows_everything():
    buf = allocate_token_bitmask(2, 33)
    assert buf.shape == (2, 2) and bitmask_to_bool(buf, 33).all()


def test_apply_sets_disallowed_logits_to_minus_inf():
    logits = np.zeros((2, 40), dtype=np.float32)
    buf = np.stack([ids_to_bitmask([1, 39], 40), ids_to_bitmask(range(40), 40)])
    apply_token_bitmask_numpy(logits, buf)
    assert np.isfinite(logits[0]).nonzero()[0].tolist() == [1, 39]
    assert np.isfinite(logits[1]).all()
