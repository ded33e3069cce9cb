import unittest

from calculator import evaluate


class EvaluateTest(unittest.TestCase):
    def test_evaluate(self):
        self.assertEqual(evaluate("2 + 3"), 5)
        self.assertEqual(evaluate("7 / 2"), 3.5)

    def test_evaluate_rejects_garbage(self):
        with self.assertRaises(ValueError):
            evaluate("2 +")
        with self.assertRaises(ValueError):
            evaluate("2 % 3")


if __name__ == "__main__":
    unittest.main()
