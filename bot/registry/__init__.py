"""The model registry: trained models with their metrics, the regression gate, activation."""
