"""Converters from raw dataset formats to RecBole atomic files, and multimodal feature encoders.

Installed as ``recbole_mm.dataset_tools``; depends on the core only for file formats.
"""
