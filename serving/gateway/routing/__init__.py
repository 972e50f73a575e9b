"""Which version answers a request, and how the model server is called."""
