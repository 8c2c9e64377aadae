"""speechlm-eval: an evaluation harness for speech language models."""

from .audio import Audio, AudioRef, load_audio
from .errors import ConfigError, DataError, PluginError, SlmEvalError
from .model import (
    CAPABILITIES,
    ContinueRequest,
    ConverseRequest,
    EncodeRequest,
    EncodeResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RespondRequest,
    RespondResult,
    ResynthesizeRequest,
    SpeechLM,
)

__version__ = "0.1.0"

__all__ = [
    "CAPABILITIES",
    "Audio",
    "AudioRef",
    "ConfigError",
    "ContinueRequest",
    "ConverseRequest",
    "DataError",
    "EncodeRequest",
    "EncodeResult",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "PluginError",
    "RespondRequest",
    "RespondResult",
    "ResynthesizeRequest",
    "SlmEvalError",
    "SpeechLM",
    "__version__",
    "load_audio",
]
