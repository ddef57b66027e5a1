"""Model registry: CNN (images), GRU/LSTM/Transformer (sequences), logistic/MLP (tabular)."""

from medfed.shared.models.registry import MODELS, build_model, model_spec

__all__ = ["MODELS", "build_model", "model_spec"]
