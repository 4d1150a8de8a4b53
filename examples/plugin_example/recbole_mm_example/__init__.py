"""Worked example of a recbole_mm plugin package (see ``biased_mf.py`` and ``BiasedMF.yaml``)."""
