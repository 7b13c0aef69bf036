"""tines.runtime.models: the model files (a plain forward each) and what feeds them: model
configs, the GGUF and safetensors loaders, low-bit weight formats, and the model registry
(`tines pull`)."""
