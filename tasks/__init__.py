"""Built-in task and group YAML files, registered under the ``speechlm_eval.tasks`` entry point."""

from pathlib import Path

TASK_DIR = Path(__file__).resolve().parent
