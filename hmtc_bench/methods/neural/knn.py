"""``knn``: a retrieval baseline on the shared text encoder; no training (network part:
``knn_net``).

The training texts are embedded once with the encoder (the masked mean of its token states,
L2-normalised); a text's label scores are the votes of its ``k`` most similar training texts
(cosine), each neighbour's label set weighted by its similarity to the power ``power`` and
the weights normalised to sum 1: a score is the weighted share of neighbours that carry the
label, in [0, 1], and since label sets hold their ancestors no label scores above its
parent. Threshold 0.5 is a weighted majority. The stand-in for retrieval-based HTC, and a
fast sanity floor: a trained method that loses to it has learned less than the encoder
already knows.

Search is exact: the similarities of a batch of queries to every training vector (at most
``knn_net.SEARCH_ELEMENTS`` numbers at once) and a top-k, on ``device``; 100,000 training
texts of MiniLM-L6 (384-d) are 100,000 x 384 float32 = 154 MB. No index library is added:
an approximate index would change the answers.

Shared with the encoder methods: the parameters ``encoder``, ``max_length``,
``n_state_layers``, ``device``, ``precision``, ``progress`` and ``random_state`` (the same
names, defaults and checks as ``neural.base``); the training ones (epochs, learning rates,
modes) do not exist here, since nothing is trained. ``encoder="textrcnn"`` is refused (an
untrained word encoder embeds nothing useful); ``"tiny-random"`` (tests) is a random BERT
seeded by ``random_state``. Inside ``shared_work.scope()`` (a grid) the token ids and the
training texts' vectors of a pretrained encoder are computed once, so cells that differ
only in ``k`` or ``power`` cost a search each.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hmtc_bench.methods.base import HMTCMethod
from hmtc_bench.methods.neural.base import MODEL_PARAMS, MODEL_SPECS, RUN_PARAMS, RUN_SPECS
from hmtc_bench.methods.params import integer, number
from hmtc_bench.methods.search_space import float_range, int_range

SHARED = ("encoder", "max_length", "n_state_layers")
RUN = ("device", "precision", "progress", "random_state")


class KNN(HMTCMethod):
    """Cosine k-nearest-neighbour label votes over the encoder's text vectors (see the module
    docstring).

    Parameters
    ----------
    encoder, max_length, n_state_layers : the text encoder (as for every encoder method)
    k : neighbours that vote
    power : weight of a neighbour = its cosine similarity (clipped at 0) to this power; 0 =
        unweighted votes
    batch_size : texts embedded at once
    device, precision, progress, random_state : as for every encoder method
    """

    TAGS = {"family": "flat", "requires": ("torch", "transformers", "safetensors"),
            "consistent_by_construction": False, "supports_dag": True, "uses_dev": False}
    PARAM_SPECS = {**{name: MODEL_SPECS[name] for name in SHARED},
                   **{name: RUN_SPECS[name] for name in RUN},
                   "k": integer(ge=1), "power": number(ge=0), "batch_size": integer(ge=1)}
    SEARCH_SPACE = {"k": int_range(1, 50, log=True), "power": float_range(0.0, 4.0)}

    def __init__(self, encoder=MODEL_PARAMS["encoder"], max_length=MODEL_PARAMS["max_length"],
                 n_state_layers=MODEL_PARAMS["n_state_layers"], k=10, power=1.0,
                 batch_size=64, device=RUN_PARAMS["device"], precision=RUN_PARAMS["precision"],
                 progress=RUN_PARAMS["progress"], random_state=RUN_PARAMS["random_state"]):
        self.encoder = encoder
        self.max_length = max_length
        self.n_state_layers = n_state_layers
        self.k = k
        self.power = power
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.progress = progress
        self.random_state = random_state

    @classmethod
    def get_test_params(cls) -> dict:
        return {"encoder": "tiny-random", "max_length": 32, "k": 5, "progress": False,
                "device": "cpu"}

    def resources(self) -> dict:
        return {"cpus": 1, "gpu": self.device != "cpu"}

    def _check_params(self) -> None:
        from hmtc_bench.methods.neural.encoders import TEXTRCNN
        if self.encoder == TEXTRCNN:
            raise ValueError("parameter encoder='textrcnn' is a word encoder trained from "
                             "scratch and knn trains nothing; use a pretrained encoder")

    def _fit(self, texts, Y, hierarchy, dev) -> None:
        from hmtc_bench.methods.neural import encoders
        from hmtc_bench.methods.neural.devices import seeded, select_device
        self._check_params()
        device = select_device(self.device)
        with seeded(self.random_state, device):
            tokenizer, model = encoders.load_encoder(self.encoder, texts=list(texts),
                                                     attention_dropout=0.0)
        self.tokenizer_ = tokenizer
        self.encoder_ = encoders.encoder_stack(model, self.n_state_layers).to(device)
        self.device_ = device
        self.max_length_ = min(int(self.max_length), encoders.max_positions(model))
        self.keys_ = self._vectors(texts, "knn embedding training texts")
        Y = sp.csr_matrix(Y, dtype=np.float64)
        Y.sum_duplicates()
        self.label_indptr_ = Y.indptr.astype(np.int64)
        self.label_indices_ = Y.indices.astype(np.int64)

    def _vectors(self, texts, desc: str) -> np.ndarray:
        """The unit text vectors of ``texts``; inside ``shared_work.scope()`` computed once
        per pretrained encoder, length, precision, device and texts."""
        from hmtc_bench import shared_work
        from hmtc_bench.methods.neural import encoders
        from hmtc_bench.methods.neural.knn_net import embed

        def compute():
            ids = encoders.shared_tokens(self.encoder, self.tokenizer_, texts, self.max_length_)
            return embed(self.encoder_, ids, self.device_, int(self.batch_size),
                         self.precision, self.progress, desc)
        if self.encoder == encoders.TINY_RANDOM or not shared_work.active():
            return compute()
        key = (self.encoder, self.max_length_, int(self.n_state_layers), self.precision,
               str(self.device_), int(self.batch_size), shared_work.digest(texts))
        return shared_work.memo("embeddings", key, compute)

    def _labels(self) -> sp.csr_matrix:
        return sp.csr_matrix((np.ones(len(self.label_indices_)), self.label_indices_,
                              self.label_indptr_), shape=(len(self.keys_), self.n_labels_))

    def _predict_proba(self, texts) -> np.ndarray:
        from hmtc_bench.methods.neural.knn_net import search, votes
        queries = self._vectors(texts, "knn embedding")
        sims, index = search(queries, self.keys_, int(self.k), self.device_)
        return votes(sims, index, self._labels(), float(self.power))

    # ------------------------------------------------------------------ saving
    def _save_state(self, writer) -> None:
        """The tokenizer's and encoder config's own files, the encoder's weights
        (safetensors), the training vectors and label sets (arrays)."""
        from hmtc_bench.methods.neural.encoders import save_encoder_files, save_weights
        from hmtc_bench.methods.saving import save_attributes
        save_encoder_files(writer, self.tokenizer_, self.encoder_)
        save_weights(self.encoder_.model, writer.path("encoder.safetensors"))
        save_attributes(writer, self, exclude=("tokenizer_", "encoder_", "device_"))

    def _load_state(self, reader) -> None:
        from hmtc_bench.methods.neural import encoders
        from hmtc_bench.methods.neural.devices import select_device
        from hmtc_bench.methods.saving import load_attributes
        load_attributes(reader, self)
        tokenizer, model = encoders.encoder_from_files(reader.root, 0.0)
        encoders.load_weights(model, reader.path("encoder.safetensors"), "encoder")
        self.device_ = select_device(self.device)
        self.tokenizer_ = tokenizer
        self.encoder_ = encoders.encoder_stack(model, self.n_state_layers).to(self.device_)
