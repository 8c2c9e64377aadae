"""One module per built-in benchmark; ``SUBSETS`` is the build order."""

from .abx import ABX
from .lexical import Lexical
from .salmon import Salmon
from .storycloze import StoryCloze
from .syntactic import Syntactic

SUBSETS = [Lexical(), Syntactic(), StoryCloze(), Salmon(), ABX()]
