"""Reference model plugins for speechlm-eval (subclasses of ``speechlm_eval.model.SpeechLM``)."""
