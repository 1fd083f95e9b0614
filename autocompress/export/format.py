"""Names shared by the exporter and the runtimes (kept free of torch, so a runtime imports only onnxruntime)."""

ARTIFACT_FILE = "artifact.json"
FORMAT = "autocompress-onnx"
FORMAT_VERSION = 1
