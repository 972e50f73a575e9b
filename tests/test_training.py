import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from text_contract.layout import WARMUP_REQUESTS_FILE, version_dirs
from text_contract.tokenizer import Tokenizer, TokenizerContract, pad
from training.dataset import load_imdb
from training.export import export_version
from training.models import ARCHITECTURES, Regularisation, build_model
from training.warmup import PLAIN_WARMUP_SHAPES


@pytest.mark.parametrize(
    "architecture, recurrent_params",
    [("simple_rnn", 2_080), ("lstm", 8_320), ("gru", 6_336), ("bilstm", 16_640)],
)
def test_parameter_counts_match_the_reference_summaries(architecture, recurrent_params):
    # Dropout layers add no weights: the regularised model is the reference architecture.
    regularised = Regularisation(embedding_dropout=0.3, input_dropout=0.2, recurrent_dropout=0.1)
    for model in (build_model(architecture, 10_000), build_model(architecture, 10_000, regularised)):
        assert model.get_layer("embedding").count_params() == 320_000
        assert model.get_layer(architecture).count_params() == recurrent_params
        assert model.count_params() == 320_000 + recurrent_params + model.layers[-1].count_params()
        assert model.output_shape == (None, 1)
    assert set(ARCHITECTURES) == {"simple_rnn", "lstm", "gru", "bilstm"}


@pytest.mark.parametrize("length", [0, 1, 5, 499, 500, 501, 1200])
def test_serving_pads_as_keras_pad_sequences(length):
    ids = list(range(1, length + 1))
    expected = keras.utils.pad_sequences([ids], maxlen=500)[0]
    assert pad(ids, 500).dtype == np.int32
    np.testing.assert_array_equal(pad(ids, 500), expected)


@pytest.mark.parametrize("architecture", ["simple_rnn", "lstm"])
def test_padding_is_masked_so_leading_padding_changes_nothing(architecture):
    model = build_model(architecture, 50)
    model.get_layer("embedding").embeddings.assign(np.random.default_rng(0).normal(size=(50, 32)))
    words = np.random.default_rng(1).integers(1, 50, (4, 30)).astype(np.int32)
    short = np.asarray(model(words))
    padded = np.asarray(model(np.pad(words, [[0, 0], [470, 0]])))
    np.testing.assert_allclose(padded, short, atol=1e-6)
    # Without the mask, padding is input: a short text's output changes with it.
    unmasked = build_model(architecture, 50, Regularisation(mask_padding=False))
    unmasked.set_weights(model.get_weights())
    few = words[:, -3:]
    assert np.abs(np.asarray(unmasked(np.pad(few, [[0, 0], [497, 0]]))) - np.asarray(unmasked(few))).max() > 1e-4


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
        # The session's models are exported --no-xla: nothing to compile, two shapes to warm.
        assert shapes == [(rows, 500) for rows, _ in PLAIN_WARMUP_SHAPES]


def test_report_beside_the_export(models_dir):
    for name in ("imdb_lstm", "imdb_simple_rnn"):
        report = models_dir / "reports" / name / "1"
        metrics = json.loads((report / "metrics.json").read_text())
        assert len(metrics["epochs"]) == 5
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(metrics["epochs"][0])
        assert 1 <= metrics["best_epoch"] <= 5
        best = max(e["val_accuracy"] for e in metrics["epochs"])
        assert metrics["epochs"][metrics["best_epoch"] - 1]["val_accuracy"] == best
        assert metrics["reviews"] == {"train": 3200, "validation": 800, "test": 300, "snippets": 10_662}
        # The small run reaches 0.78 on its 300 test reviews (both models); a broken
        # tokenizer, a label flip or a model that did not learn stays near 0.5.
        assert 0.70 <= metrics["test"]["accuracy"] <= 1 and metrics["config"]["seed"] == 7
        if metrics["weights"] == "average of epochs":
            # Averaging is kept only when it scores at least as well as the best epoch on validation.
            assert metrics["best_epoch"] in metrics["exported_epochs"]
            assert len(metrics["exported_epochs"]) == min(metrics["config"]["average_best"], 5) > 1
            assert metrics["validation"]["accuracy"] >= best - 1e-6
        else:
            assert metrics["exported_epochs"] == [metrics["best_epoch"]]
            assert metrics["validation"]["accuracy"] == pytest.approx(best, abs=1e-6)
        calibration = metrics["test"]["calibration"]
        assert sum(row["count"] for row in calibration["bins"]) == 300
        assert {"tensorflow", "keras", "numpy", "python"} <= set(metrics["library_versions"])
        for plot in ("accuracy.png", "loss.png", "reliability.png"):
            assert (report / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kept_weights_are_the_exported_ones(models_dir, shared_tarball):
    """The exported model scores the reported validation accuracy (the best epoch's, or the
    average's), not the last epoch's."""
    metrics = json.loads((models_dir / "reports" / "imdb_lstm" / "1" / "metrics.json").read_text())
    model = keras.models.load_model(models_dir / "reports" / "imdb_lstm" / "1" / "model.keras")
    _, validation = load_imdb(shared_tarball).train.sample(4000, seed=7).hold_out(0.2, seed=7)
    tokenizer = Tokenizer(TokenizerContract.read(models_dir / "imdb_lstm" / "1"))
    x_val, y_val = tokenizer.encode_batch(validation.texts)[0], np.asarray(validation.labels, np.float32)
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    assert accuracy == pytest.approx(metrics["validation"]["accuracy"], abs=1e-6)


def test_the_vocabulary_comes_from_the_training_reviews_only(models_dir, shared_tarball):
    """Seeded, and built without the held-out validation reviews (their words must not leak in)."""
    from text_contract.tokenizer import build_vocabulary

    sample = load_imdb(shared_tarball).train.sample(4000, seed=7)
    train, _ = sample.hold_out(0.2, seed=7)
    exported = TokenizerContract.read(models_dir / "imdb_lstm" / "1").vocabulary
    assert tuple(build_vocabulary(train.texts)) == exported
    assert tuple(build_vocabulary(sample.texts)) != exported


def test_unknown_monitors_are_refused_not_guessed():
    from training.train import KeepBestWeights

    keep = KeepBestWeights("val_loss")
    keep.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    for epoch, loss in enumerate([0.5, 0.3, 0.4]):
        keep.on_epoch_end(epoch, {"val_loss": loss})
    assert keep.best_epoch == 2
    with pytest.raises(ValueError, match="cannot monitor 'val_auc'"):
        KeepBestWeights("val_auc")


def test_new_exports_add_versions_and_never_overwrite(tmp_path):
    model = build_model("simple_rnn", num_words=20)
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


def test_expected_calibration_error_of_known_cases():
    from training.report import calibration

    labels = np.array([1] * 9 + [0] * 1, np.float32)
    assert calibration(np.full(10, 0.9, np.float32), labels)["expected_calibration_error"] == pytest.approx(0, abs=1e-6)
    # Half the reviews at 0.95 with 50% positives, half at 0.05 with 50%: off by 0.45 everywhere.
    halves = np.array([0.95] * 4 + [0.05] * 4, np.float32)
    table = calibration(halves, np.array([1, 0, 1, 0, 1, 0, 1, 0], np.float32))
    assert table["expected_calibration_error"] == pytest.approx(0.45, abs=1e-6)
    assert [row["count"] for row in table["bins"]] == [4, 0, 0, 0, 0, 0, 0, 0, 0, 4]
    assert table["bins"][0]["positive_rate"] == 0.5 and table["bins"][1]["positive_rate"] is None


def test_length_bucketed_batches_cover_every_review_once_trimmed_to_a_bucket():
    from training.batches import LengthBucketedBatches, real_lengths
    from training.signature import length_buckets

    rng = np.random.default_rng(3)
    ids = np.zeros((1000, 500), np.int32)
    lengths = rng.integers(1, 501, 1000)
    for row, length in enumerate(lengths):
        ids[row, 500 - length:] = rng.integers(1, 100, length)
    labels = rng.integers(0, 2, 1000).astype(np.float32)
    batches = LengthBucketedBatches(ids, labels, 32, seed=1)
    seen = []
    for index in range(len(batches)):
        x, y = batches[index]
        rows = batches.rows(index)
        assert x.shape[1] in length_buckets(500) and x.shape[1] >= real_lengths(ids[rows]).max()
        # Trimming only drops padding: the kept columns are the rows' ends.
        np.testing.assert_array_equal(x, ids[rows, 500 - x.shape[1]:])
        np.testing.assert_array_equal(y, labels[rows])
        seen += rows.tolist()
    assert sorted(seen) == list(range(1000))
    widths = [batches[i][0].shape[1] for i in range(len(batches))]
    assert np.mean(widths) < 400  # batches of similar length: most are shorter than maxlen
    untrimmed = LengthBucketedBatches(ids, labels, 32, seed=1, trim=False)
    assert {untrimmed[i][0].shape[1] for i in range(len(untrimmed))} == {500}


def test_windows_are_short_pieces_of_the_review_after_a_start_id():
    from text_contract.tokenizer import START_ID
    from training.batches import LengthBucketedBatches, WindowAugmentation, real_lengths

    ids = np.zeros((400, 500), np.int32)
    ids[:, 300] = START_ID
    ids[:, 301:] = np.arange(1000, 1199)  # 199 distinct words in order
    augmentation = WindowAugmentation(share=0.5, min_tokens=5, max_tokens=60)
    batches = LengthBucketedBatches(ids, np.zeros(400, np.float32), 50, seed=2, augmentation=augmentation)
    rows = np.concatenate([np.pad(x, [[0, 0], [500 - x.shape[1], 0]]) for x, _ in map(batches.__getitem__,
                                                                                      range(len(batches)))])
    windowed = rows[real_lengths(rows) < 200]
    assert len(windowed) == 200
    for row in windowed:
        words = row[row != 0]
        assert words[0] == START_ID and 5 <= len(words) - 1 <= 60
        assert np.all(np.diff(words[1:]) == 1)  # a contiguous run of the review's own words
    with pytest.raises(ValueError, match="share"):
        WindowAugmentation(share=1.0)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--embedding-dropout", "1"], "--embedding-dropout: expected a number in [0, 1), got '1'"),
        (["--recurrent-dropout", "-0.1"], "--recurrent-dropout: expected a number in [0, 1)"),
        (["--window-share", "half"], "--window-share: expected a number in [0, 1), got 'half'"),
        (["--window-tokens", "60-5"], "--window-tokens: expected MIN-MAX with 1 <= MIN <= MAX, got '60-5'"),
        (["--window-tokens", "5"], "--window-tokens: expected MIN-MAX"),
        (["--weight-decay", "-1"], "--weight-decay: expected a number >= 0"),
        (["--label-smoothing", "2"], "--label-smoothing: expected a number in [0, 1)"),
        (["--lr-schedule", "step"], "--lr-schedule: invalid choice: 'step'"),
        (["--average-best", "0"], "--average-best: expected a whole number >= 1, got '0'"),
        (["--no-mask-padding"], "--no-mask-padding needs --no-xla"),
        (["--snippets", "/nonexistent/rt.tar.gz"], "--snippets /nonexistent/rt.tar.gz: no such file"),
    ],
)
def test_bad_training_flags_are_refused_with_the_reason(flags, message, capsys):
    from training.__main__ import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_snippets_read_from_the_tarball_and_its_folder(tmp_path):
    import tarfile

    from harness.processes import RT_POLARITY_TARBALL
    from training.snippets import load_snippets

    tarball = RT_POLARITY_TARBALL
    snippets = load_snippets(tarball)
    assert len(snippets) == 10_662 and sum(snippets.labels) == 5_331
    assert snippets.labels[0] == 1 and snippets.labels[-1] == 0
    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path, filter="data")
    from_folder = load_snippets(tmp_path)
    assert from_folder == snippets
    from training.dataset import DatasetError

    with pytest.raises(DatasetError, match="rt-polarity.neg not found"):
        (tmp_path / "rt-polaritydata" / "rt-polarity.neg").unlink()
        load_snippets(tmp_path)


def test_the_best_epochs_are_kept_and_averaged():
    from training.train import KeepBestWeights

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    keep = KeepBestWeights("val_accuracy", keep=2)
    keep.set_model(model)
    for epoch, (fill, accuracy) in enumerate([(1.0, 0.5), (2.0, 0.7), (3.0, 0.6), (4.0, 0.55)]):
        model.set_weights([np.full(w.shape, fill, np.float32) for w in model.get_weights()])
        keep.on_epoch_end(epoch, {"val_accuracy": accuracy})
    assert keep.best_epoch == 2 and [epoch for _, epoch, _ in keep.kept] == [2, 3]
    assert all(np.all(w == 2.5) for w in keep.average())
    keep.on_train_end()
    assert all(np.all(w == 2.0) for w in model.get_weights())
