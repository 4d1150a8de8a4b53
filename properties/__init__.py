"""recbole_mm's YAML defaults: ``overall.yaml``, ``model/``, ``dataset/`` (installed as data)."""
