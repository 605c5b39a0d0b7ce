"""Face maths on one image: detect, align, embed (TFLite), match against the gallery; the model card contract."""
