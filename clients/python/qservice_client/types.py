"""Results as plain dataclasses; per-token arrays are numpy arrays when numpy is installed, else lists."""
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence

try:
    import numpy as _np
except ImportError:  # numpy is optional
    _np = None


def array(values: Sequence[float]) -> Any:
    return _np.asarray(list(values), dtype=_np.float32) if _np is not None else list(values)


@dataclass
class Item:
    """A prompt with a (partial) response, as text or as token ids; or a text prompt with response_ids."""
    prompt: Optional[str] = None
    response: Optional[str] = None
    prompt_ids: Optional[List[int]] = None
    response_ids: Optional[List[int]] = None
    id: str = ""
    append_eos: bool = False


@dataclass
class ModelInfo:
    policy_model: str
    reference_model: str
    architecture: str
    vocab_size: int
    max_context: int
    beta: float
    dtype: str
    device: str
    bos_token_id: Optional[int]
    eos_token_id: Optional[int]


@dataclass
class ScoredItem:
    """credits[t] = beta * (policy_logprobs[t] - reference_logprobs[t]); q_values their running sum; reward the total.

    With include_token_text: token_texts[t] is token t's text and [char_starts[t], char_ends[t]) its offsets into the
    response text in Unicode code points, i.e. Python str indices: response[char_starts[t]:char_ends[t]] is the
    token's span (the whole character for each byte of a character split into byte tokens; -1 for tokens given as
    ids and for an appended EOS). With step_delimiter: step_ends (the index of the token that ends each step) and
    step_rewards (each step's credits summed in double; they add up to reward). Empty lists otherwise.
    """
    id: str
    token_ids: List[int]
    policy_logprobs: Any
    reference_logprobs: Any
    credits: Any
    q_values: Any
    reward: float
    prompt_tokens: int
    token_texts: List[str] = field(default_factory=list)
    step_ends: List[int] = field(default_factory=list)
    step_rewards: List[float] = field(default_factory=list)
    char_starts: List[int] = field(default_factory=list)
    char_ends: List[int] = field(default_factory=list)


@dataclass
class Candidate:
    id: int
    text: str
    policy_logprob: float
    reference_logprob: float
    credit: float


@dataclass
class NextTokenChoices:
    id: str
    prompt_tokens: int
    response_tokens: int
    q: float
    candidates: List[Candidate]


@dataclass
class Sample:
    scores: ScoredItem
    text: str
    finish_reason: str  # "eos", "stop", "length" or "context"


@dataclass
class SampleResult:
    samples: List[Sample]
    seed: int
    beta: float
    prefix_tokens: int
