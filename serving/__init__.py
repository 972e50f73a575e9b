"""Serving side: the TF-Serving-compatible model server, the gateway and the client."""
