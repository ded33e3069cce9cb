"""A small calculator package: the workspace of the example specs."""

from calculator.ops import add, divide, multiply, subtract
from calculator.parse import evaluate

__all__ = ["add", "divide", "evaluate", "multiply", "subtract"]
