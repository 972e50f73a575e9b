"""The gateway's transports: codecs over the data plane (HTTP, gRPC, the Open Inference Protocol)."""
