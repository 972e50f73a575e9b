"""Accuracy on the rt-polarity snippets through the real serving path (gateway + model server).

The small session models are far from the full run's figures, but a broken tokenizer
(every word out of vocabulary gives one answer for all: 0.5) or a flipped label
(below 0.5) falls under the floor.
"""

from benchmarks.snippets import RT_POLARITY_TARBALL, gateway_accuracy
from text_contract.layout import SERVED_MODELS
from training.snippets import load_snippets

# The session models score ~0.6 (LSTM) here; chance is 0.5 +- 0.005 on 10,662 snippets.
FLOOR = 0.55


def test_snippet_accuracy_through_the_gateway_is_well_above_chance(gateway):
    snippets = load_snippets(RT_POLARITY_TARBALL)
    for model in SERVED_MODELS:
        result = gateway_accuracy(gateway.url, model, snippets)
        assert result["snippets"] == 10_662 and result["versions"] == [1]
        assert result["accuracy"] >= FLOOR, result
