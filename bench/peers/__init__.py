"""The systems a user would pick instead of tines, each driven in its own idiom.

`hf.HFPeer`: Hugging Face transformers `generate`, one call at a time (Outlines for JSON
where installed). `llamacpp.LlamaPeer`: llama-cpp-python on the same GGUF with its prompt
cache on. Both count the tokens they were given and computed in a `Tally`.
"""
