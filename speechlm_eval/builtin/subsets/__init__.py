"""One module per built-in benchmark; ``SUBSETS`` is the build order."""

from .lexical import Lexical

SUBSETS = [Lexical()]
