"""tines.grammar: constraints (regex, JSON schema, choices) as token-mask FSMs."""
