"""qservice_client: a Python client of QService (per-token credits and implicit Q of a DPO pair), over gRPC."""
from .client import QServiceClient
from .decoding import DecodeResult, ExternalGenerator, ServiceSampler, best_of_n, chunk_beam_search, guided, sample
from .errors import QServiceError
from .evaluation import PairResult, evaluate, summarize, wilson
from .types import AdapterInfo, Item, ModelInfo, NextTokenChoices, NextTokensResults, PolicyInfo, SampleResult, ScoredItem, ScoreResults

__all__ = ["QServiceClient", "QServiceError", "Item", "ModelInfo", "PolicyInfo", "AdapterInfo",
           "ScoredItem", "ScoreResults", "NextTokenChoices", "NextTokensResults",
           "SampleResult", "PairResult", "evaluate", "summarize", "wilson", "ServiceSampler", "ExternalGenerator", "DecodeResult", "sample", "guided", "best_of_n", "chunk_beam_search"]
