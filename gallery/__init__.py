"""clockface gallery: who is enrolled, their embeddings bound to a model hash, and folder/USB layout rules."""
