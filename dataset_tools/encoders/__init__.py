"""Feature encoders: item text, images, audio and video into feature matrices (see extract.py)."""
