"""Reciprocal rank fusion."""

from __future__ import annotations

import numpy as np
import pytest

from photoindex.errors import ErrorCode, PhotoindexError
from photoindex.search.fusion import rrf


def test_scores_are_the_weighted_sum_of_reciprocal_ranks() -> None:
    fused = dict(rrf([[10, 20, 30], [30, 10]], k=60))
    assert fused[10] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[20] == pytest.approx(1 / 62)
    assert fused[30] == pytest.approx(1 / 63 + 1 / 61)
    weighted = dict(rrf([[10, 20, 30], [30, 10]], k=60, weights=[2.0, 0.5]))
    assert weighted[10] == pytest.approx(2 / 61 + 0.5 / 62)
    assert weighted[30] == pytest.approx(2 / 63 + 0.5 / 61)


def test_agreement_beats_one_first_place() -> None:
    vector = [1, 2, 3, 4, 5]
    text = [9, 3, 2, 8]
    ids = [i for i, _ in rrf([vector, text])]
    assert ids[:2] == [2, 3]  # both lists hold 2 and 3 near the top; 1 and 9 only one list each
    assert set(ids) == {1, 2, 3, 4, 5, 8, 9}
    scores = [s for _, s in rrf([vector, text])]
    assert scores == sorted(scores, reverse=True)


def test_weights_shift_the_order_and_zero_weight_keeps_ids_at_zero() -> None:
    a, b = [1, 2], [2, 1]
    assert [i for i, _ in rrf([a, b], weights=[1.0, 0.5])] == [1, 2]
    assert [i for i, _ in rrf([a, b], weights=[0.5, 1.0])] == [2, 1]
    assert rrf([[7], [8]], weights=[1.0, 0.0]) == [(7, pytest.approx(1 / 61)), (8, 0.0)]


def test_k_controls_how_much_the_head_counts() -> None:
    # 1: first in one list only; 2: fourth in both. A small k favours the single first place.
    rankings = [[1, 5, 6, 2], [7, 8, 9, 2]]
    assert rrf(rankings, k=0)[0][0] == 1
    assert rrf(rankings, k=60)[0][0] == 2


def test_ties_break_by_best_place_then_id_whatever_the_input_order() -> None:
    # 5 and 3 each hold rank 1 in one list and rank 2 in the other: equal scores, equal best place
    assert rrf([[5, 3], [3, 5]]) == rrf([[3, 5], [5, 3]])
    assert [i for i, _ in rrf([[5, 3], [3, 5]])] == [3, 5]
    # equal scores (exactly 1.0 with k=0), different best places: 9 and 2 are first once, 1 second twice
    fused = rrf([[9, 1], [2, 1]], k=0, weights=[1.0, 1.0])
    order = [i for i, _ in fused]
    assert dict(fused)[9] == dict(fused)[2] == pytest.approx(1.0) and dict(fused)[1] == pytest.approx(1.0)
    assert order == [2, 9, 1]  # best place 1 (ids 2, 9 by id) before best place 2


def test_repeated_id_counts_once_at_its_best_place() -> None:
    assert dict(rrf([[1, 2, 1, 1]]))[1] == pytest.approx(1 / 61)
    assert dict(rrf([[2, 1, 1]]))[1] == pytest.approx(1 / 62)


def test_limit_and_empty_input() -> None:
    rankings = [list(range(100)), list(range(99, -1, -1))]
    assert len(rrf(rankings, limit=10)) == 10
    assert rrf(rankings, limit=10) == rrf(rankings)[:10]
    assert rrf(rankings, limit=0) == [] and rrf(rankings, limit=-3) == []
    assert rrf([]) == [] and rrf([[], []]) == []
    assert rrf([[], [4]]) == [(4, pytest.approx(1 / 61))]


def test_accepts_numpy_ids_and_returns_python_ints() -> None:
    fused = rrf([np.array([3, 1], dtype=np.int64), (1, 2)])
    assert all(type(i) is int and type(s) is float for i, s in fused)
    assert [i for i, _ in fused] == [1, 3, 2]


@pytest.mark.parametrize("kwargs", [
    {"k": -1}, {"k": float("nan")}, {"k": float("inf")},
    {"weights": [1.0]}, {"weights": [1.0, -0.1]}, {"weights": [1.0, float("nan")]},
])
def test_bad_arguments_are_structured_errors(kwargs: dict) -> None:
    with pytest.raises(PhotoindexError) as exc:
        rrf([[1], [2]], **kwargs)
    assert exc.value.code == ErrorCode.INVALID_REQUEST
