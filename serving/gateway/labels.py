"""The label of a positive probability: one threshold for answers and shadow comparisons."""

POSITIVE_THRESHOLD = 0.5


def label_of(probability: float) -> str:
    return "positive" if probability >= POSITIVE_THRESHOLD else "negative"
