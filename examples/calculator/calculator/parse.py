from calculator.ops import add, divide, multiply, subtract


def evaluate(text):
    parts = text.split()
    if len(parts) != 3:
        raise ValueError("expected: NUMBER OPERATOR NUMBER")
    x = float(parts[0])
    y = float(parts[2])
    o = parts[1]
    if o == "+":
        return add(x, y)
    elif o == "-":
        return subtract(x, y)
    elif o == "*":
        return multiply(x, y)
    elif o == "/":
        return divide(x, y)
    else:
        raise ValueError("unknown operator " + o)
