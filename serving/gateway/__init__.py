"""The public edge of the sentiment service: HTTP (Flask under granian) and gRPC APIs
over one shared core that tokenizes text and calls the model server."""
