"""Serving a federated model: export, model card, HTTP API with explanations, clinician page."""
