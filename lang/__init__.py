"""tines: a structured-generation language for LLM programs."""
