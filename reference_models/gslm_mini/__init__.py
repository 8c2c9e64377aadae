"""gslm-mini: a small GSLM-style textless speech LM that runs on CPU with nothing to download.

Whisper tiny.en encoder (CTranslate2, packaged) -> k-means units -> GPT-2 unit LM. The
plugin is :class:`reference_models.gslm_mini.model.GSLMMini`; ``train.py`` rebuilds the
shipped checkpoint; ``MODEL_CARD.md`` documents both.
"""
