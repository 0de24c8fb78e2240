"""The classifier's build: labeled data, the encoder, fine-tuning, ONNX export, evaluation,
labeling tools and model cards. Needs the training extras (torch, safetensors, onnxscript);
serving (`router/`) never imports it."""
