"""clockface converter: workstation-only export of face-embedding models to verified TFLite."""
