"""recbole_mm's own model plugins, installed as ``recbole_mm.plugins``.

Each plugin module here is registered through the ``recbole_mm.plugins`` entry point group in
``setup.py`` — the same mechanism a third-party package uses — and uses only recbole_mm's public API.
"""
