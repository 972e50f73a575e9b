"""Who may call: API keys, rate limits, request ids."""
