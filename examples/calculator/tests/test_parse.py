import pytest

from calculator import evaluate


def test_evaluate():
    assert evaluate("2 + 3") == 5
    assert evaluate("7 / 2") == 3.5


def test_evaluate_rejects_garbage():
    with pytest.raises(ValueError):
        evaluate("2 +")
    with pytest.raises(ValueError):
        evaluate("2 % 3")
