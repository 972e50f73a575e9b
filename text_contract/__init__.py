"""The contract between training and serving: how review text becomes token ids
(``tokenizer``), what the exported signature is called (``signature``) and where a
model's versions and their files live (``layout``).

Imported by training, the gateway, the model server and the benchmarks; it must
never import TensorFlow, since the gateway does not load the TensorFlow runtime.
"""
