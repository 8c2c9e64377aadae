"""speechlm-eval: an evaluation harness for speech language models."""

from .audio import Audio, AudioRef, TwoChannelAudio, load_audio
from .errors import ConfigError, DataError, PluginError, SlmEvalError
from .model import (
    CAPABILITIES,
    ContinueRequest,
    ConverseRequest,
    ConverseResult,
    DuplexSession,
    EncodeRequest,
    EncodeResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RespondRequest,
    RespondResult,
    ResynthesizeRequest,
    SessionInfo,
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
    "ConverseResult",
    "DataError",
    "DuplexSession",
    "EncodeRequest",
    "EncodeResult",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "PluginError",
    "RespondRequest",
    "RespondResult",
    "ResynthesizeRequest",
    "SessionInfo",
    "SlmEvalError",
    "SpeechLM",
    "TwoChannelAudio",
    "__version__",
    "load_audio",
]
