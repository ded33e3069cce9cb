import unittest

from calculator import add, divide, multiply, subtract


class OpsTest(unittest.TestCase):
    def test_arithmetic(self):
        self.assertEqual(add(2, 3), 5)
        self.assertEqual(subtract(2, 3), -1)
        self.assertEqual(multiply(2, 3), 6)
        self.assertEqual(divide(3, 2), 1.5)

    def test_rejects_non_numbers(self):
        with self.assertRaises(TypeError):
            add("2", 3)
        with self.assertRaises(TypeError):
            multiply(True, 3)

    def test_divide_by_zero(self):
        with self.assertRaises(ZeroDivisionError):
            divide(1, 0)


if __name__ == "__main__":
    unittest.main()
