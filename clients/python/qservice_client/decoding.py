"""Reward-guided decoding on the pair's Q: best-of-N, chunk-level beam search and guided sampling, against the
service's own sampler or any outside generator the service only scores (as the C# library QService.Client.Decoding)."""
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

from .client import QServiceClient
from .types import Item


@dataclass
class Continuation:
    """New tokens after a prefix, their text and credits; reward is their sum (what they add to the prefix's Q)."""
    token_ids: List[int]
    text: str
    credits: List[float]
    reward: float
    ended: bool


@dataclass
class Candidate:
    token_ids: List[int]
    text: str
    credits: List[float]
    q: float
    ended: bool


@dataclass
class BeamRound:
    candidates: List[Candidate]
    kept: List[int]


@dataclass
class DecodeResult:
    strategy: str
    token_ids: List[int]
    text: str
    credits: List[float]
    reward: float
    forward_tokens: int
    rejected: List[Candidate] = field(default_factory=list)
    rounds: List[BeamRound] = field(default_factory=list)


class ServiceSampler:
    """Continuations from the service's Sample RPC (policy, reference or guided with alpha), scored as they are made
    (with beta, when given, in place of the configured one), under the served policy named policy (empty: the default)."""

    def __init__(self, client: QServiceClient, sample_from: str = "policy", alpha: Optional[float] = None, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, stop: Optional[str] = None, beta: Optional[float] = None, policy: str = ""):
        self.client, self.sample_from, self.alpha, self.policy = client, sample_from, alpha, policy
        self.temperature, self.top_k, self.top_p, self.stop, self.beta = temperature, top_k, top_p, stop, beta

    def continue_(self, prompt: str, response: Sequence[int], n: int, max_new_tokens: int, seed: int):
        result = self.client.sample(Item(prompt=prompt, response_ids=list(response), policy=self.policy), n=n,
                                    sample_from=self.sample_from, alpha=self.alpha,
                                    temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, max_new_tokens=max_new_tokens,
                                    stop=[self.stop] if self.stop else [], seed=seed, beta=self.beta)
        continuations = [Continuation(list(s.scores.token_ids), s.text, [float(c) for c in s.scores.credits], s.scores.reward,
                                      s.finish_reason in ("eos", "context")) for s in result.samples]
        return continuations, result.prefix_tokens + sum(len(c.token_ids) for c in continuations)


# A generator proposes n continuations: (prompt, response ids, n, max_new_tokens, seed) -> [(token ids, text, ended)].
Generate = Callable[[str, List[int], int, int, int], List[tuple]]


class ExternalGenerator:
    """Continuations from any generator (e.g. a larger model elsewhere); the service only scores them (with beta,
    when given, in place of the configured one), under the served policy named policy (empty: the default)."""

    def __init__(self, client: QServiceClient, generate: Generate, beta: Optional[float] = None, policy: str = ""):
        self.client, self.generate, self.beta, self.policy = client, generate, beta, policy

    def continue_(self, prompt: str, response: Sequence[int], n: int, max_new_tokens: int, seed: int):
        proposals = self.generate(prompt, list(response), n, max_new_tokens, seed)
        items = [Item(prompt=prompt, response_ids=list(response) + list(ids), policy=self.policy) for ids, _, _ in proposals]
        scored = self.client.score(items, beta=self.beta)
        continuations = []
        for (ids, text, ended), s in zip(proposals, scored):
            credits = [float(c) for c in s.credits[len(response):]]
            continuations.append(Continuation(list(ids), text, credits, sum(credits), ended))
        return continuations, sum(s.prompt_tokens + len(s.token_ids) for s in scored)


def sample(source, prompt: str, max_tokens: int, seed: int, name: str = "sample") -> DecodeResult:
    """One continuation: plain sampling, or guided sampling when the source samples with alpha."""
    (c,), forward = source.continue_(prompt, [], 1, max_tokens, seed)
    return DecodeResult(name, c.token_ids, c.text, c.credits, c.reward, forward)


def guided(client: QServiceClient, prompt: str, alpha: float, max_tokens: int, seed: int) -> DecodeResult:
    return sample(ServiceSampler(client, "guided", alpha), prompt, max_tokens, seed, f"guided-a{alpha:g}")


def best_of_n(source, prompt: str, n: int, max_tokens: int, seed: int) -> DecodeResult:
    """n whole responses; the one with the highest reward (the first of equals)."""
    continuations, forward = source.continue_(prompt, [], n, max_tokens, seed)
    best = max(range(len(continuations)), key=lambda i: (continuations[i].reward, -i))
    chosen = continuations[best]
    rejected = [Candidate(c.token_ids, c.text, c.credits, c.reward, c.ended) for i, c in enumerate(continuations) if i != best]
    return DecodeResult(f"bon-{n}", chosen.token_ids, chosen.text, chosen.credits, chosen.reward, forward, rejected)


def chunk_beam_search(source, prompt: str, width: int, expansions: int, chunk_tokens: int, max_tokens: int, seed: int) -> DecodeResult:
    """W beams, each expanded by K continuations of up to L tokens; the top W by Q go on until every kept beam has ended."""
    beams = [Candidate([], "", [], 0.0, False)]
    rounds, forward, round_ = [], 0, 0
    while any(not b.ended for b in beams):
        candidates = []
        for b, beam in enumerate(beams):
            if beam.ended:
                candidates.append(beam)
                continue
            room = min(chunk_tokens, max_tokens - len(beam.token_ids))
            continuations, spent = source.continue_(prompt, beam.token_ids, expansions, room, (seed * 1_000_003 + round_ * 1009 + b) % 2**64)
            forward += spent
            for c in continuations:
                tokens = beam.token_ids + c.token_ids
                candidates.append(Candidate(tokens, beam.text + c.text, beam.credits + c.credits, beam.q + c.reward,
                                            c.ended or len(tokens) >= max_tokens))
        kept = sorted(range(len(candidates)), key=lambda i: (-candidates[i].q, i))[:width]
        rounds.append(BeamRound(candidates, kept))
        beams = [candidates[i] for i in kept]
        round_ += 1
    winner = beams[0]
    return DecodeResult(f"beam-w{width}-k{expansions}-l{chunk_tokens}", winner.token_ids, winner.text, winner.credits, winner.q,
                        forward, beams[1:], rounds)
