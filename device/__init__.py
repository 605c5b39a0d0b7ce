"""clockface device runtime: everything that runs on the terminal. Never imports TensorFlow or converter/."""

__version__ = "0.1.0"
