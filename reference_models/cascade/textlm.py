"""The cascade's text LM, now :mod:`speechlm_eval.judges.textlm` (shared with the ``text-lm``
judge, so GenPPL and the cascade score text with the same code).

Importing this name gives that very module object (not a copy): ``textlm.NgramLM``,
``load_text_lm``, ``rolling_logprobs``, ``generate``, ... are the judge module's own.
"""

from __future__ import annotations

import sys

from speechlm_eval.judges import textlm as _textlm

sys.modules[__name__] = _textlm
