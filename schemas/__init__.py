"""Bottom layer: pure pydantic v2 event models, the topic registry and codecs."""
