"""``cascade``: the reference cascade SpeechLM (ASR judge -> text LM -> TTS). See MODEL_CARD.md."""
