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
    """A prompt with a (partial) response, as text or as token ids; or a text prompt with response_ids. messages, in place of
    the prompt: a conversation ([{"role": "user", "content": "..."}, ...]) the server renders with the pair's chat template."""
    prompt: Optional[str] = None
    response: Optional[str] = None
    prompt_ids: Optional[List[int]] = None
    response_ids: Optional[List[int]] = None
    id: str = ""
    append_eos: bool = False
    policy: str = ""  # a served policy's name (ModelInfo.policies); empty: the default, the first
    messages: Optional[List[dict]] = None


@dataclass
class AdapterInfo:
    """What a LoRA adapter policy is (its base is the reference)."""
    peft_type: str
    rank: int
    lora_alpha: float
    use_rslora: bool
    target_modules: List[str]
    module_count: int
    modules_to_save: List[str]
    description: str


@dataclass
class PolicyInfo:
    """A served policy: the name requests use, the model it is, its architecture, and its adapter when it is one."""
    name: str
    model: str
    architecture: str
    adapter: Optional[AdapterInfo] = None


@dataclass
class ModelInfo:
    """The pair being served; policy_model and architecture are the default policy's, policies lists every served one
    (the first is the default). The limits in force (0: not reported) size requests:
    at most max_items_per_request items and max_tokens_per_request tokens per request, max_batch_tokens per batch."""
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
    reference_architecture: str = ""
    max_batch_tokens: int = 0
    max_items_per_request: int = 0
    max_tokens_per_request: int = 0
    policies: List[PolicyInfo] = field(default_factory=list)
    has_chat_template: bool = False  # whether items may give their prompt as messages

    @property
    def policy_architecture(self) -> str:
        return self.architecture


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
    policy: str = ""  # the policy whose log-probabilities these are


class ScoreResults(list):
    """Score's results (ScoredItem, in request order; with policies=[...] item-major, each item under each policy) as a
    list, with the response's beta (the one actually used) and the names of the default policy and the reference."""

    def __init__(self, results: Sequence["ScoredItem"] = (), beta: float = 0.0, policy_model: str = "", reference_model: str = ""):
        super().__init__(results)
        self.beta, self.policy_model, self.reference_model = beta, policy_model, reference_model

    def __repr__(self) -> str:
        return f"ScoreResults({list.__repr__(self)}, beta={self.beta!r}, policy_model={self.policy_model!r}, reference_model={self.reference_model!r})"


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
    policy: str = ""  # the policy whose log-probabilities these are


class NextTokensResults(list):
    """NextTokens' results (NextTokenChoices, in request order) as a list, with the beta actually used."""

    def __init__(self, results: Sequence["NextTokenChoices"] = (), beta: float = 0.0):
        super().__init__(results)
        self.beta = beta

    def __repr__(self) -> str:
        return f"NextTokensResults({list.__repr__(self)}, beta={self.beta!r})"


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
