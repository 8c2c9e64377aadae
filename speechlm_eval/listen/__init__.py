"""Human listening tests (``slm-eval listen``): MOS, CMOS, SMOS, MUSHRA and A/B.

``create`` builds a study folder from the audio that evaluation runs kept (``--log_samples``),
``serve`` runs it in a browser (aiohttp), ``export`` writes a self-contained page for offline or
crowd use, and ``analyze`` screens the raters and writes the statistics as a results file
(tasks ``human_<test>``) that the leaderboard shows beside the automatic metrics.

Scales, screening and statistics follow ITU-T P.800/P.808 (ACR, CCR), ITU-R BS.1534 (MUSHRA
post-screening) and crowdMOS (Ribeiro et al., ICASSP 2011); see ``shared/reference``
``downstream-quality-human.md`` section 3 for the facts this package relies on.
"""

from __future__ import annotations

from .cli import add_arguments, run_cli

__all__ = ["add_arguments", "run_cli"]
