import grpc


class QServiceError(Exception):
    """A call the service refused or failed: the gRPC status code and the service's message (which says what to fix)."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
