"""Model records: float forward, folding, and the quantized model's file with its content hash."""

import json
import warnings

import numpy as np
import pytest

from dcia.model import (
    FloatDense,
    FloatElementwise,
    FloatEmbedding,
    FloatModel,
    QuantizedModel,
    fold_into_dense,
    with_affine,
)
from controller.quantize import quantize
from dcia.errors import ModelFileError, ModelIntegrityError, ParameterRangeError

RNG = np.random.default_rng(3)


def small_model():
    return FloatModel(
        "small",
        [
            FloatElementwise(np.array([1.0, 2.0, 0.5]), np.array([0.0, -1.0, 1.0])),
            FloatDense(RNG.normal(size=(4, 3)), RNG.normal(size=4), relu=True),
            FloatDense(RNG.normal(size=(2, 4)), RNG.normal(size=2)),
        ],
        "softmax",
    )


class TestFloatModel:
    def test_forward_runs_a_range_of_layers(self):
        fm = small_model()
        x = RNG.normal(size=(6, 3))
        np.testing.assert_allclose(fm.forward(fm.forward(x, 0, 2), 2), fm.forward(x))
        np.testing.assert_allclose(fm.run(x).sum(axis=1), 1.0)
        np.testing.assert_array_equal(fm.predict(x), fm.run(x).argmax(axis=1))

    def test_folding_is_exact(self):
        fm = small_model()
        x = RNG.normal(size=(6, 3))
        folded = fold_into_dense(fm.layers[0], fm.layers[1])
        np.testing.assert_allclose(folded.forward(x), fm.forward(x, 0, 2))
        plain = FloatDense(RNG.normal(size=(2, 3)), np.zeros(2))
        affine = with_affine(plain, np.array([2.0, -1.0]), np.array([0.5, 0.0]))
        np.testing.assert_allclose(affine.forward(x), plain.forward(x) * [2.0, -1.0] + [0.5, 0.0])

    def test_layer_widths_must_chain(self):
        with pytest.raises(ParameterRangeError, match="layer 0 has 4 outputs but layer 1 takes 3"):
            FloatModel(
                "bad",
                [
                    FloatDense(np.ones((4, 3)), np.zeros(4)),
                    FloatDense(np.ones((2, 3)), np.zeros(2)),
                ],
            )

    def test_embedding_only_first(self):
        with pytest.raises(ParameterRangeError, match="only the first layer"):
            FloatModel(
                "bad", [FloatDense(np.ones((4, 1)), np.zeros(4)), FloatEmbedding(np.ones((5, 4)))]
            )


@pytest.fixture(scope="module")
def quantized():
    return quantize(small_model(), RNG.normal(size=(200, 3)), model_id=7, version=3)


class TestSaveLoad:
    def test_round_trip_keeps_every_parameter_and_the_hash(self, quantized, tmp_path):
        path = quantized.save(tmp_path / "m.json")
        loaded = QuantizedModel.load(path)
        assert loaded.layers == quantized.layers
        assert loaded.scales == quantized.scales
        assert (loaded.name, loaded.model_id, loaded.version, loaded.output) == (
            "small",
            7,
            3,
            "softmax",
        )
        assert loaded.content_hash == quantized.content_hash
        x = RNG.normal(size=(20, 3))
        np.testing.assert_array_equal(
            loaded.forward_int(loaded.quantize_input(x)),
            quantized.forward_int(quantized.quantize_input(x)),
        )
        np.testing.assert_array_equal(
            loaded.float_model.forward(x), quantized.float_model.forward(x)
        )

    def test_embedding_model_round_trip(self, tmp_path):
        fm = FloatModel("emb", [FloatEmbedding(RNG.normal(size=(10, 4)))])
        qm = quantize(fm, np.arange(10))
        assert QuantizedModel.load(qm.save(tmp_path / "e.json")).layers == qm.layers

    def test_hash_names_the_content(self, quantized):
        other = quantize(small_model(), RNG.normal(size=(200, 3)), model_id=7, version=4)
        assert len(quantized.content_hash) == 64 and other.content_hash != quantized.content_hash

    def test_changed_weight_is_detected(self, quantized, tmp_path):
        path = quantized.save(tmp_path / "m.json")
        doc = json.loads(path.read_text())
        doc["model"]["layers"][1]["weights"][0][0] += 1
        path.write_text(json.dumps(doc))
        with pytest.raises(
            ModelIntegrityError, match="does not match its content hash .* do not deploy it"
        ):
            QuantizedModel.load(path)

    def test_changed_hash_is_detected(self, quantized, tmp_path):
        path = quantized.save(tmp_path / "m.json")
        doc = json.loads(path.read_text())
        doc["sha256"] = "0" * 64
        path.write_text(json.dumps(doc))
        with pytest.raises(ModelIntegrityError):
            QuantizedModel.load(path)

    def test_truncated_file(self, quantized, tmp_path):
        path = quantized.save(tmp_path / "m.json")
        path.write_text(path.read_text()[:100])
        with pytest.raises(ModelFileError, match="not readable JSON"):
            QuantizedModel.load(path)

    def test_other_json(self, tmp_path):
        path = tmp_path / "x.json"
        path.write_text('{"hello": 1}')
        with pytest.raises(ModelFileError, match="not a DCIA quantized model file"):
            QuantizedModel.load(path)

    def test_missing_file(self, tmp_path):
        with pytest.raises(ModelFileError, match="does not exist"):
            QuantizedModel.load(tmp_path / "none.json")

    def test_consistent_but_invalid_content(self, quantized, tmp_path):
        body = quantized.to_dict()
        body["layers"][1]["weights"][0][0] = 300  # not an int8, hash recomputed to match
        from dcia.model import (
            _digest,
        )  # the file format's own hash, to forge a consistent file

        doc = {
            "format": "dcia.quantized-model",
            "format_version": 1,
            "sha256": _digest(body),
            "model": body,
        }
        path = tmp_path / "m.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(ModelFileError, match="invalid model: .*is not an int8"):
            QuantizedModel.load(path)


def test_model_id_must_fit_the_wire(quantized):
    with pytest.raises(ParameterRangeError, match="model id 70000 is outside"):
        QuantizedModel("m", 70000, 1, quantized.layers, quantized.scales, quantized.float_model)


class TestNonFiniteValues:
    """NaN and inf are refused where a model is made or read, naming the layer and the value."""

    @pytest.mark.parametrize(
        ("make", "fragment"),
        [
            (lambda: FloatDense(np.array([[1.0, np.nan]]), np.zeros(1)), "dense layer weights have 1 NaN"),
            (lambda: FloatDense(np.ones((2, 2)), np.array([0.0, np.inf])), "dense layer bias has 1 inf"),
            (lambda: FloatElementwise(np.ones(2), np.array([0.0, -np.inf])), "element-wise layer offsets have 1 inf"),
            (lambda: FloatEmbedding(np.full((2, 2), np.nan)), "embedding table is all NaN \\(4 values\\)"),
        ],
    )
    def test_float_layers(self, make, fragment):
        with pytest.raises(ParameterRangeError, match=fragment):
            make()

    @pytest.mark.parametrize("scale", [float("nan"), float("inf"), 0.0, -1.0])
    def test_quantized_model_scales(self, quantized, scale):
        scales = [*quantized.scales[:-1], scale]
        with pytest.raises(ParameterRangeError, match="scale 3 .* must be a finite number greater than 0"):
            QuantizedModel("m", 1, 1, quantized.layers, scales, quantized.float_model)

    def write(self, path, body, *, sha=None):
        from dcia.model import _digest

        doc = {"format": "dcia.quantized-model", "format_version": 1,
               "sha256": sha if sha is not None else _digest(body), "model": body}
        path.write_text(json.dumps(doc))
        return path

    def load_refused(self, path, *fragments):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ModelFileError) as e:
                QuantizedModel.load(path)
        message = str(e.value)
        assert "\n" not in message, message
        for fragment in fragments:
            assert fragment in message, message

    def test_nan_weight_in_a_saved_file(self, quantized, tmp_path):
        body = quantized.to_dict()
        body["float_layers"][1]["weights"][2][0] = float("nan")
        path = self.write(tmp_path / "m.json", body, sha="0" * 64)
        self.load_refused(path, "float layer 1 (dense) weights[2][0] is NaN")

    def test_infinite_scale_in_a_saved_file(self, quantized, tmp_path):
        body = quantized.to_dict()
        path = tmp_path / "m.json"
        self.write(path, body)
        path.write_text(path.read_text().replace(json.dumps(body["scales"][1]), "1e999", 1))
        self.load_refused(path, "scales[1] is inf")

    def test_nan_as_a_string_with_a_consistent_hash(self, quantized, tmp_path):
        body = quantized.to_dict()
        body["scales"][0] = "nan"
        self.load_refused(self.write(tmp_path / "m.json", body), "invalid model", "scale 0")
        body = quantized.to_dict()
        body["float_layers"][2]["bias"][0] = "-inf"
        self.load_refused(self.write(tmp_path / "m.json", body), "invalid model", "1 inf")

    def test_deeply_nested_file(self, tmp_path):
        path = tmp_path / "deep.json"
        path.write_text("[" * 100_000 + "]" * 100_000)
        self.load_refused(path, "not readable JSON")
