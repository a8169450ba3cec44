"""The neural (encoder-based) methods: msml and its ablations, flat-bert, hmcn, hiagm.

Each method family is an estimator module that does not import torch (``msml``,
``flat_bert``, ``hmcn``, ``hiagm``: parameters, tags, ``_build_network``) and, beside it, the
torch module of its network (``msml_net``, ``flat_bert_net``, ``hmcn_net``, ``hiagm_net``),
imported only inside ``fit`` / ``predict_proba``, so that listing methods stays fast.

Shared parts, by job:

* ``base``: ``NeuralMethod``, the estimator base: the hyper-parameters every encoder method
  shares (declared once), fit, predict and checkpoint loading; ``TINY_TEST_PARAMS``;
* ``encoders``: loading encoders (pretrained, tiny-random, the TextRCNN word encoder),
  ``EncoderStack``, tokenising;
* ``heads``: ``TextClassifier`` (the base of the networks), ``TextCNN``, pooling, priors;
* ``batching``: length bucketing, padding, the cache of frozen states, batched inference;
* ``training``: the ``Trainer`` (AdamW, warm-up, early stopping, resuming; a NaN or
  infinite loss stops it with ``TrainingError``);
* ``checkpoints``: ``Checkpoint`` (safetensors and JSON, no pickle; every file checked
  against its recorded SHA-256 before it is read, ``CheckpointError`` otherwise);
* ``devices``: device choice, seeding, precision (autocast).

A new neural method is two files: an estimator subclassing ``base.NeuralMethod`` (its own
parameters in ``PARAMS``, what they accept in ``PARAM_SPECS``, its network built in
``_build_network``) and its network subclassing ``heads.TextClassifier``; then one entry
point in the ``hmtc_bench.methods`` group.
"""
