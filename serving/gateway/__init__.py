"""The gateway: the HTTP and gRPC APIs of the sentiment service, over one data plane that
tokenizes text and calls the model server.

Folders by job, every import pointing down the list:

- ``api/``: the transports. Codecs between each protocol and the data plane
  (``http_app``, ``sentiment_grpc``, ``v2_codec`` / ``v2_http`` / ``v2_grpc``), the
  servers that run them, and the per-call machinery (request ids, keys, metrics, access
  lines: the Flask hooks and ``grpc_interceptor``). Codecs import the data plane and the
  errors, nothing else of the gateway.
- ``data_plane.py``: one ``PredictRequest`` in, predictions out; live, ready, models.
- ``routing/``: which version answers and how it is called (``versions``, ``rollouts``,
  ``shadow``, ``coalescing``, ``model_client``, ``tokenizers``).
- ``access/``: who may call (``api_keys``, ``rate_limits``, ``guard``, ``request_ids``).
- the ground floor: ``settings``, ``errors``, ``labels``, ``explanations``,
  ``watched_file``, ``observability/`` (metrics, logs).
"""
