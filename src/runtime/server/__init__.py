"""tines.runtime.server: the HTTP server (native API and OpenAI-compatible API)."""
