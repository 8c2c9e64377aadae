"""One module per built-in benchmark; ``SUBSETS`` is the build order."""

from .abx import ABX
from .asr import ASR
from .continuation import Continuation
from .dialogue import Dialogue
from .interactive import Interactive
from .lexical import Lexical
from .prosody import Prosody
from .salmon import Salmon
from .spoken_qa import SpokenQA
from .storycloze import StoryCloze
from .stsp import STSP
from .syntactic import Syntactic

SUBSETS = [
    Lexical(),
    Syntactic(),
    StoryCloze(),
    Salmon(),
    ABX(),
    ASR(),
    Prosody(),
    STSP(),
    Dialogue(),
    Interactive(),
    Continuation(),
    SpokenQA(),
]
