"""Accuracy on the rt-polarity snippets through the real serving path (gateway + model server).

The small session models are far from the full run's figures, but a broken tokenizer
(every word out of vocabulary gives one answer for all: 0.5) or a flipped label
(below 0.5) falls under the floor.
"""

import json

from benchmarks.snippets import gateway_accuracy
from harness.processes import RT_POLARITY_TARBALL
from text_contract.layout import SERVED_MODELS
from training.snippets import load_snippets

# The session models score ~0.64-0.66 here; chance is 0.5 +- 0.005 on 10,662 snippets.
FLOOR = 0.58


def test_snippet_accuracy_through_the_gateway_is_well_above_chance(gateway, models_dir):
    snippets = load_snippets(RT_POLARITY_TARBALL)
    for model, name in SERVED_MODELS.items():
        result = gateway_accuracy(gateway.url, model, snippets)
        assert result["snippets"] == 10_662 and result["versions"] == [1]
        assert result["accuracy"] >= FLOOR, result
        # The trainer's in-process figure (its own batching, the Keras model) is the same measurement.
        report = json.loads((models_dir / "reports" / name / "1" / "metrics.json").read_text())
        assert abs(report["snippets"]["accuracy"] - result["accuracy"]) <= 0.001, (report["snippets"], result)
