"""Feature encoders: turn item text (and, later, images, audio, video) into feature matrices."""
