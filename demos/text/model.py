"""The text demo's model: topics of fortune cookies, embeddings pooled in the network.

Data: Debian's ``fortunes`` package (installed by scripts/bootstrap.sh), the fortune
cookie files of BSD ``fortune``: each file of /usr/share/games/fortunes is a category of
short texts separated by ``%`` lines. Five categories whose words differ make the
classes (``CATEGORIES``: food, law, love, sports, startrek; 928 texts); the task is to
say which category a text comes from, an intent-like answer to a short request. The
split is fixed: a seeded permutation of each category, four fifths to train, the rest
(185 texts) to test, in a seeded order that mixes the categories. Nothing is synthesised; the texts are as the package ships them.

Tokenizer (``Tokenizer``, the edge's pre-processing): lower case, words of letters
(``[a-z]+``), the words in the vocabulary kept in order, the first 16 of them, padded with
the token id 0 (``arithmetic.BAG_PAD``). The vocabulary: the 255 words of the training
texts, in at least 3 of them and not a stop word, that say most about the category (the
document frequency times the KL divergence of their category distribution from the
prior); word ``k`` is token id ``k + 1``, one int8 element on the wire. A text with no
known word is an empty bag.

Model: an embedding-bag of 256 x 16 (mean over the tokens), ``dense 16 -> 16, ReLU``,
``dense 16 -> 5``. Trained in float with numpy (Adam, cross-entropy, the same result every
run). Exported with onnx.helper: ``Gather`` of the table by the ``tokens`` input,
``ReduceSum`` over the tokens divided by ``Max(ReduceSum(Cast(Greater(tokens, 0))), 1)``
(the mean over the tokens that are not padding), then MatMul/Add/Relu and MatMul/Add,
Softmax; the vocabulary and the categories are in the file's metadata.

    python -m demos.text.model          # train again, write models/fortune_topics.onnx
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.onnx_import import import_onnx
from controller.quantize import quantize
from dcia.arithmetic import BAG_MAX_ID, BAG_PAD
from dcia.errors import DciaError
from dcia.model import FloatModel, QuantizedModel
from dcia.wire import MAX_NET_ELEMS

MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / "fortune_topics.onnx"
FORTUNES = Path("/usr/share/games/fortunes")
CATEGORIES = ("food", "law", "love", "sports", "startrek")
TOKENS = MAX_NET_ELEMS
"""Tokens per request: one element each, what a switch reads."""
VOCABULARY = BAG_MAX_ID
"""Words in the vocabulary: token ids 1..255 (0 is padding)."""
MIN_DOCS = 3
DIM = 16
HIDDEN = 16
SEED = 0
TRAIN_SHARE = 0.8
EPOCHS = 80
BATCH = 32
LEARNING_RATE = 0.01
MODEL_ID = 4
"""The model id the demo deploys (digits 1, vehicle 2, the evaluation's conv model 3)."""
STOP_WORDS = frozenset("""
a an and are as at be but by do for from had has have he her his i if in is it me my no
not of on one or she so that the their there they this to was we what when which who will
with would you your all can""".split())
WORD = re.compile(r"[a-z]+")


class TextDataError(DciaError):
    """The corpus is not installed."""


def fortunes(category: str, root: Path = FORTUNES) -> list[str]:
    """The texts of one fortune file: the pieces between ``%`` lines, stripped."""
    path = root / category
    if not path.is_file():
        raise TextDataError(f"{path} is missing: install Debian's 'fortunes' package "
                            "(scripts/bootstrap.sh does)")
    text = path.read_text(encoding="utf-8", errors="replace")
    return [t.strip() for t in re.split(r"^%$", text, flags=re.M) if t.strip()]


@dataclass(frozen=True, eq=False)
class TextSplit:
    """The fixed split of the corpus: texts and category indices."""

    train_texts: list[str]
    y_train: np.ndarray
    test_texts: list[str]
    y_test: np.ndarray


def text_split(root: Path = FORTUNES) -> TextSplit:
    """Each category's texts in a seeded order, the first four fifths to train."""
    rng = np.random.default_rng(SEED)
    tr, ytr, te, yte = [], [], [], []
    for k, category in enumerate(CATEGORIES):
        texts = fortunes(category, root)
        order = rng.permutation(len(texts))
        cut = int(round(TRAIN_SHARE * len(texts)))
        tr += [texts[i] for i in order[:cut]]
        te += [texts[i] for i in order[cut:]]
        ytr += [k] * cut
        yte += [k] * (len(texts) - cut)
    mixed = rng.permutation(len(te))  # the test texts in a seeded order, categories mixed
    return TextSplit(tr, np.array(ytr), [te[i] for i in mixed], np.array(yte)[mixed])


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``, as the tokenizer sees them.

    >>> words("Beam me up, Scotty!")
    ['beam', 'me', 'up', 'scotty']
    """
    return WORD.findall(text.lower())


@dataclass(frozen=True)
class Tokenizer:
    """Text -> ``TOKENS`` token ids: the known words in order, the first ``TOKENS``,
    padded with ``BAG_PAD``; word ``k`` of ``vocabulary`` is id ``k + 1``.

    >>> tok = Tokenizer(("beam", "scotty"))
    >>> tok.encode("Beam me up, Scotty! Beam!")[:5]
    [1, 2, 1, 0, 0]
    """

    vocabulary: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.vocabulary) <= BAG_MAX_ID:
            raise ValueError(f"a vocabulary has 1..{BAG_MAX_ID} words, not {len(self.vocabulary)}")

    @property
    def ids(self) -> dict[str, int]:
        return {w: k + 1 for k, w in enumerate(self.vocabulary)}

    def encode(self, text: str) -> list[int]:
        ids = self.ids
        found = [ids[w] for w in words(text) if w in ids][:TOKENS]
        return found + [BAG_PAD] * (TOKENS - len(found))

    def encode_all(self, texts: list[str]) -> np.ndarray:
        return np.array([self.encode(t) for t in texts], dtype=np.int64).reshape(-1, TOKENS)

    @classmethod
    def build(cls, texts: list[str], labels: np.ndarray, size: int = VOCABULARY) -> Tokenizer:
        """The ``size`` most informative words of the training texts (module docstring)."""
        n_classes = int(labels.max()) + 1
        docs: Counter = Counter()
        per_class: dict[str, np.ndarray] = {}
        for text, label in zip(texts, labels):
            for w in set(words(text)) - STOP_WORDS:
                docs[w] += 1
                per_class.setdefault(w, np.zeros(n_classes))[label] += 1
        prior = np.bincount(labels, minlength=n_classes) / len(labels)

        def score(w: str) -> float:
            c = per_class[w]
            p = (c + 1) / (c.sum() + n_classes)
            return float(c.sum() * np.sum(p * np.log(p / prior)))

        candidates = sorted((w for w, n in docs.items() if n >= MIN_DOCS))
        ranked = sorted(candidates, key=lambda w: (-score(w), w))
        return cls(tuple(ranked[:size]))


@dataclass(frozen=True, eq=False)
class Weights:
    table: np.ndarray   # (VOCABULARY + 1, DIM), row 0 (padding) zero
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray


def forward(p: Weights, tokens: np.ndarray):
    mask = (tokens != BAG_PAD)[:, :, None]
    count = np.maximum(mask.sum(axis=1), 1)
    pooled = (p.table[tokens] * mask).sum(axis=1) / count
    h = np.maximum(pooled @ p.w1.T + p.b1, 0.0)
    return mask, count, pooled, h, h @ p.w2.T + p.b2


def train(tokens: np.ndarray, y: np.ndarray) -> Weights:
    """Fit the model on the training bags (numpy, Adam; the same result every run)."""
    rng = np.random.default_rng(SEED)
    n_classes = len(CATEGORIES)
    params = [rng.normal(0, 0.3, (VOCABULARY + 1, DIM)),
              rng.normal(0, np.sqrt(2 / DIM), (HIDDEN, DIM)), np.zeros(HIDDEN),
              rng.normal(0, np.sqrt(2 / HIDDEN), (n_classes, HIDDEN)), np.zeros(n_classes)]
    params[0][BAG_PAD] = 0.0
    m = [np.zeros_like(q) for q in params]
    v = [np.zeros_like(q) for q in params]
    step = 0
    for _ in range(EPOCHS):
        order = rng.permutation(len(y))
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            t, yy = tokens[idx], y[idx]
            p = Weights(*params)
            mask, count, pooled, h, logits = forward(p, t)
            prob = np.exp(logits - logits.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            d = prob
            d[np.arange(len(yy)), yy] -= 1.0
            d /= len(yy)
            g_w2, g_b2 = d.T @ h, d.sum(0)
            d_h = d @ p.w2 * (h > 0)
            g_w1, g_b1 = d_h.T @ pooled, d_h.sum(0)
            d_pooled = d_h @ p.w1 / count
            g_table = np.zeros_like(p.table)
            np.add.at(g_table, t, d_pooled[:, None, :] * mask)
            g_table[BAG_PAD] = 0.0
            grads = [g_table, g_w1, g_b1, g_w2, g_b2]
            step += 1
            for i, (q, g) in enumerate(zip(params, grads)):
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                q -= LEARNING_RATE * (m[i] / (1 - 0.9 ** step)) / (np.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8)
    return Weights(*params)


def export(p: Weights, tokenizer: Tokenizer, path: Path = MODEL_PATH) -> Path:
    """Write the model as ONNX, input ``tokens`` (int64, (batch, 16)), output
    ``probabilities``; the vocabulary and the categories in the metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def init(name, value, dtype=np.float32):
        return numpy_helper.from_array(np.asarray(value, dtype), name)

    initializers = [init("table", p.table), init("w1", p.w1.T), init("b1", p.b1),
                    init("w2", p.w2.T), init("b2", p.b2), init("axis1", [1], np.int64),
                    init("zero", 0, np.int64), init("one", 1.0)]
    nodes = [
        helper.make_node("Gather", ["table", "tokens"], ["vectors"], name="lookup", axis=0),
        helper.make_node("ReduceSum", ["vectors", "axis1"], ["sums"], name="pool", keepdims=0),
        helper.make_node("Greater", ["tokens", "zero"], ["is_token"], name="not_padding"),
        helper.make_node("Cast", ["is_token"], ["is_token_f"], name="as_float",
                         to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["is_token_f", "axis1"], ["count0"], name="count", keepdims=1),
        helper.make_node("Max", ["count0", "one"], ["count"], name="at_least_one"),
        helper.make_node("Div", ["sums", "count"], ["pooled"], name="mean"),
        helper.make_node("MatMul", ["pooled", "w1"], ["h_mm"], name="dense1"),
        helper.make_node("Add", ["h_mm", "b1"], ["h_z"], name="bias1"),
        helper.make_node("Relu", ["h_z"], ["h"], name="relu1"),
        helper.make_node("MatMul", ["h", "w2"], ["o_mm"], name="dense2"),
        helper.make_node("Add", ["o_mm", "b2"], ["logits"], name="bias2"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "fortune_topics",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [None, TOKENS])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, len(CATEGORIES)])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="dcia demos.text.model")
    model.ir_version = 8
    model.doc_string = ("DCIA text demo: categories of Debian's fortune cookies; embedding-bag "
                        "256x16 (mean), 16->16 ReLU, 16->5; demos/text/model.py")
    helper.set_model_props(model, {"dcia.vocabulary": json.dumps(tokenizer.vocabulary),
                                   "dcia.categories": json.dumps(CATEGORIES)})
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@dataclass(frozen=True, eq=False)
class TextModel:
    """The imported float model, its int8 form, the tokenizer and the data split."""

    float_model: FloatModel
    quantized: QuantizedModel
    tokenizer: Tokenizer
    split: TextSplit

    def test_tokens(self) -> np.ndarray:
        return self.tokenizer.encode_all(self.split.test_texts)


def read_tokenizer(path: str | Path = MODEL_PATH) -> Tokenizer:
    """The tokenizer whose vocabulary the model file carries."""
    import onnx
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return Tokenizer(tuple(json.loads(props["dcia.vocabulary"])))


def load_text(path: str | Path = MODEL_PATH) -> TextModel:
    """Import ``path`` and quantize it, calibrated on the training texts' bags."""
    split = text_split()
    tokenizer = read_tokenizer(path)
    float_model = import_onnx(path, name="fortune_topics")
    quantized = quantize(float_model, tokenizer.encode_all(split.train_texts), model_id=MODEL_ID)
    return TextModel(float_model, quantized, tokenizer, split)


def accuracy_table(model: TextModel) -> dict[str, float]:
    """Test accuracy of the float and int8 models."""
    t, y = model.test_tokens(), model.split.y_test
    return {"float": float(np.mean(model.float_model.predict(t) == y)),
            "int8": float(np.mean(model.quantized.predict(t) == y))}


def main() -> int:
    split = text_split()
    tokenizer = Tokenizer.build(split.train_texts, split.y_train)
    path = export(train(tokenizer.encode_all(split.train_texts), split.y_train), tokenizer)
    model = load_text(path)
    print(f"wrote {path}: {len(split.train_texts)} texts to train, {len(split.test_texts)} to test")
    for name, value in accuracy_table(model).items():
        print(f"  {name:8s} {100 * value:6.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
