import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from text_contract.layout import WARMUP_REQUESTS_FILE, version_dirs
from text_contract.tokenizer import Tokenizer, TokenizerContract
from training.dataset import load_imdb
from training.export import export_version
from training.models import ARCHITECTURES, build_model
from training.warmup import WARMUP_BATCH_SIZES


@pytest.mark.parametrize(
    "architecture, recurrent_params",
    [("simple_rnn", 2_080), ("lstm", 8_320), ("gru", 6_336), ("bilstm", 16_640)],
)
def test_parameter_counts_match_the_reference_summaries(architecture, recurrent_params):
    model = build_model(architecture, num_words=10_000, maxlen=500)
    assert model.get_layer("embedding").count_params() == 320_000
    assert model.layers[1].count_params() == recurrent_params
    assert model.output_shape == (None, 1)
    assert set(ARCHITECTURES) == {"simple_rnn", "lstm", "gru", "bilstm"}


def test_cli_exports_both_models_with_signature_and_contract(models_dir):
    for name in ("imdb_lstm", "imdb_simple_rnn"):
        version_dir = models_dir / name / "1"
        assert (version_dir / "saved_model.pb").is_file() and (version_dir / "variables").is_dir()
        loaded = tf.saved_model.load(str(version_dir))
        signature = loaded.signatures["serving_default"]
        (spec,) = signature.structured_input_signature[1].values()
        assert (spec.name, spec.dtype, spec.shape.as_list()) == ("tokens", tf.int32, [None, 500])
        outputs = signature(tokens=tf.zeros([3, 500], tf.int32))
        assert list(outputs) == ["positive_probability"]
        assert outputs["positive_probability"].dtype == tf.float32
        assert outputs["positive_probability"].shape == (3, 1)
        contract = TokenizerContract.read(version_dir)
        assert contract.num_words == 10_000 and contract.maxlen == 500
        assert not any(p.name.startswith(".staging") for p in (models_dir / name).iterdir())


def test_every_version_carries_tf_serving_warmup_requests(models_dir):
    for name in ("imdb_lstm", "imdb_simple_rnn"):
        version_dir = models_dir / name / "1"
        records = list(tf.data.TFRecordDataset(str(version_dir / WARMUP_REQUESTS_FILE)).as_numpy_iterator())
        shapes = []
        for record in records:
            log = prediction_log_pb2.PredictionLog.FromString(record)
            assert log.WhichOneof("log_type") == "predict_log"
            request = log.predict_log.request
            assert (request.model_spec.name, request.model_spec.signature_name) == (name, "serving_default")
            tokens = tf.make_ndarray(request.inputs["tokens"])
            assert tokens.dtype == np.int32 and tokens.max() < 10_000
            shapes.append(tokens.shape)
        assert shapes == [(size, 500) for size in WARMUP_BATCH_SIZES]


def test_report_beside_the_export(models_dir):
    for name in ("imdb_lstm", "imdb_simple_rnn"):
        report = models_dir / "reports" / name / "1"
        metrics = json.loads((report / "metrics.json").read_text())
        assert len(metrics["epochs"]) == 3
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(metrics["epochs"][0])
        assert 1 <= metrics["best_epoch"] <= 3
        best = max(e["val_accuracy"] for e in metrics["epochs"])
        assert metrics["epochs"][metrics["best_epoch"] - 1]["val_accuracy"] == best
        assert metrics["reviews"] == {"train": 3200, "validation": 800, "test": 300}
        assert 0.5 < metrics["test"]["accuracy"] <= 1 and metrics["config"]["seed"] == 7
        assert {"tensorflow", "keras", "numpy", "python"} <= set(metrics["library_versions"])
        for plot in ("accuracy.png", "loss.png"):
            assert (report / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kept_weights_are_the_best_epoch(models_dir, shared_tarball):
    """The exported model scores the best epoch's validation accuracy, not the last one's."""
    from training.train import split_validation

    metrics = json.loads((models_dir / "reports" / "imdb_lstm" / "1" / "metrics.json").read_text())
    model = keras.models.load_model(models_dir / "reports" / "imdb_lstm" / "1" / "model.keras")
    train = load_imdb(shared_tarball).train.sample(4000, seed=7)
    tokenizer = Tokenizer(TokenizerContract.read(models_dir / "imdb_lstm" / "1"))
    ids, _ = tokenizer.encode_batch(train.texts)
    _, (x_val, y_val) = split_validation(ids, np.asarray(train.labels, np.float32), 0.2, 7)
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    assert accuracy == pytest.approx(metrics["epochs"][metrics["best_epoch"] - 1]["val_accuracy"], abs=1e-6)


def test_same_seed_gives_same_vocabulary(models_dir, shared_tarball):
    from text_contract.tokenizer import build_vocabulary

    train = load_imdb(shared_tarball).train.sample(4000, seed=7)
    assert tuple(build_vocabulary(train.texts)) == TokenizerContract.read(models_dir / "imdb_lstm" / "1").vocabulary


def test_new_exports_add_versions_and_never_overwrite(tmp_path):
    model = build_model("simple_rnn", num_words=20, maxlen=500)
    contract = TokenizerContract(vocabulary=tuple(f"w{i}" for i in range(17)))
    base = tmp_path / "imdb_simple_rnn"
    (base / "7").mkdir(parents=True)  # an existing version, e.g. from an earlier run
    (base / "7" / "marker").write_text("untouched")
    first = export_version(model, contract, base)
    second = export_version(model, contract, base)
    assert (first.name, second.name) == ("8", "9")
    assert list(version_dirs(base)) == [7, 8, 9]
    assert (base / "7" / "marker").read_text() == "untouched"
    assert sorted(p.name for p in base.iterdir()) == ["7", "8", "9"]
