"""The shipped command templates (``*.yaml.j2``) and their XML partials."""

from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent
