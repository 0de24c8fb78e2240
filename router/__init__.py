"""Cost-efficient LLM routing: classify a prompt, pick a tier by policy, call it, log the decision."""

__version__ = "0.1.0"
