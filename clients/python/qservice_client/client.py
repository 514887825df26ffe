"""QServiceClient: typed calls to the QScorer service over gRPC."""
from typing import Iterable, Iterator, Optional, Sequence

import grpc

from . import _messages as m
from .errors import QServiceError
from .types import (AdapterInfo, Candidate, Item, ModelInfo, NextTokenChoices, NextTokensResults, PolicyInfo, Sample, SampleResult,
                    ScoredItem, ScoreResults, array)

_SERVICE = "/qservice.v1.QScorer/"


def _item(item: Item):
    message = m.ScoreItem(id=item.id, append_eos=item.append_eos, policy=item.policy)
    if item.prompt is not None:
        message.prompt = item.prompt
    if item.response is not None:
        message.response = item.response
    message.prompt_token_ids.extend(item.prompt_ids or [])
    message.response_token_ids.extend(item.response_ids or [])
    for turn in item.messages or []:
        message.messages.add(role=turn["role"], content=turn["content"])
    return message


def _scored(s) -> ScoredItem:
    return ScoredItem(
        id=s.id, token_ids=list(s.token_ids), policy_logprobs=array(s.policy_logprobs), reference_logprobs=array(s.reference_logprobs),
        credits=array(s.credits), q_values=array(s.q_values), reward=s.reward, prompt_tokens=s.prompt_tokens,
        token_texts=list(s.token_texts), step_ends=list(s.step_ends), step_rewards=list(s.step_rewards),
        char_starts=list(s.char_starts), char_ends=list(s.char_ends), policy=s.policy)


def _score_request(items: Sequence[Item], beta: Optional[float], include_token_text: bool, step_delimiter: Optional[str],
                   policies: Sequence[str], reproducible: bool = False):
    request = m.ScoreRequest(items=[_item(i) for i in items], include_token_text=include_token_text, policies=list(policies),
                             reproducible=reproducible)
    if beta is not None:
        request.beta = beta
    if step_delimiter is not None:
        request.step_delimiter = step_delimiter
    return request


def _score_results(response) -> ScoreResults:
    return ScoreResults([_scored(r) for r in response.results], beta=response.beta, policy_model=response.policy_model,
                        reference_model=response.reference_model)


def _policy(p) -> PolicyInfo:
    a = p.adapter if p.HasField("adapter") else None
    adapter = AdapterInfo(a.peft_type, a.rank, a.lora_alpha, a.use_rslora, list(a.target_modules), a.module_count, list(a.modules_to_save),
                          a.description) if a is not None else None
    return PolicyInfo(p.name, p.model, p.architecture, adapter)


class QServiceClient:
    """A connection to a QService server, e.g. QServiceClient("127.0.0.1:50051").

    api_key: sent as "authorization: Bearer <key>" when the server requires keys.
    timeout: seconds per call (None: no deadline).
    """

    def __init__(self, address: str = "127.0.0.1:50051", api_key: Optional[str] = None, timeout: Optional[float] = 60.0,
                 channel: Optional[grpc.Channel] = None):
        self._channel = channel or grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        self._metadata = [("authorization", f"Bearer {api_key}")] if api_key else None
        self._timeout = timeout
        self._calls = {
            name: self._channel.unary_unary(_SERVICE + name, request_serializer=request.SerializeToString, response_deserializer=response.FromString)
            for name, request, response in [
                ("Score", m.ScoreRequest, m.ScoreResponse),
                ("NextTokens", m.NextTokensRequest, m.NextTokensResponse),
                ("Sample", m.SampleRequest, m.SampleResponse),
                ("GetModelInfo", m.GetModelInfoRequest, m.ModelInfo),
            ]
        }
        self._stream = self._channel.stream_stream(_SERVICE + "ScoreStream", request_serializer=m.ScoreRequest.SerializeToString,
                                                   response_deserializer=m.ScoreResponse.FromString)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def _call(self, name: str, request):
        try:
            return self._calls[name](request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise QServiceError(e.code(), e.details()) from None

    def model_info(self) -> ModelInfo:
        i = self._call("GetModelInfo", m.GetModelInfoRequest())
        return ModelInfo(policy_model=i.policy_model, reference_model=i.reference_model, architecture=i.policy_architecture,
                         vocab_size=i.vocab_size, max_context=i.max_context, beta=i.beta, dtype=i.dtype, device=i.device,
                         bos_token_id=i.bos_token_id if i.HasField("bos_token_id") else None,
                         eos_token_id=i.eos_token_id if i.HasField("eos_token_id") else None,
                         reference_architecture=i.reference_architecture, max_batch_tokens=i.max_batch_tokens,
                         max_items_per_request=i.max_items_per_request, max_tokens_per_request=i.max_tokens_per_request,
                         policies=[_policy(p) for p in i.policies], has_chat_template=i.has_chat_template)

    def score(self, items: Sequence[Item], beta: Optional[float] = None, include_token_text: bool = False,
              step_delimiter: Optional[str] = None, policies: Sequence[str] = (), reproducible: bool = False) -> ScoreResults:
        """Per-token log-probabilities, credits and Q of each response, in request order (a list, with the beta used
        and the model names). beta overrides the configured one; include_token_text adds each token's text and
        code-point offsets into the response (token_texts, char_starts, char_ends); step_delimiter splits each
        response into steps (step_ends, step_rewards). Each item is scored under its own policy (Item.policy, the
        default when empty) or, with policies=[...], under each of those: item-major, len(items) * len(policies)
        results, each with its .policy (the items may then not name one). reproducible=True: the request is batched alone on
        the server, so the same request always gets the same bits (README, Reproducible requests)."""
        return _score_results(self._call("Score", _score_request(items, beta, include_token_text, step_delimiter, policies, reproducible)))

    def score_stream(self, batches: Iterable[Sequence[Item]], beta: Optional[float] = None, include_token_text: bool = False,
                     step_delimiter: Optional[str] = None, policies: Sequence[str] = ()) -> Iterator[ScoreResults]:
        """Scores batches over one long-lived stream: one result list per batch, in order, as each is ready; the
        options are score's, applied to every batch."""
        def requests():
            for items in batches:
                yield _score_request(items, beta, include_token_text, step_delimiter, policies)
        try:
            for response in self._stream(requests(), metadata=self._metadata):
                yield _score_results(response)
        except grpc.RpcError as e:
            raise QServiceError(e.code(), e.details()) from None

    def next_tokens(self, items: Sequence[Item], top_k: int = 0, candidate_ids: Iterable[int] = (), rank_by: str = "policy",
                    beta: Optional[float] = None) -> NextTokensResults:
        """Q of each partial response and its next-token candidates (the top_k by rank_by: policy, reference or credit),
        in request order (a list, with the beta used); each item under its Item.policy (.policy on each result)."""
        request = m.NextTokensRequest(items=[_item(i) for i in items], top_k=top_k, candidate_ids=list(candidate_ids),
                                      rank_by=m.enum_value("RankBy", f"RANK_BY_{rank_by.upper()}"))
        if beta is not None:
            request.beta = beta
        reply = self._call("NextTokens", request)
        return NextTokensResults(
            [NextTokenChoices(id=c.id, prompt_tokens=c.prompt_tokens, response_tokens=c.response_tokens, q=c.q,
                              candidates=[Candidate(x.id, x.text, x.policy_logprob, x.reference_logprob, x.credit) for x in c.candidates],
                              policy=c.policy)
             for c in reply.results], beta=reply.beta)

    def sample(self, item: Item, n: int = 1, sample_from: str = "policy", alpha: Optional[float] = None, temperature: float = 1.0,
               top_k: int = 0, top_p: float = 1.0, max_new_tokens: int = 0, stop: Iterable[str] = (), seed: Optional[int] = None,
               beta: Optional[float] = None, step_delimiter: Optional[str] = None) -> SampleResult:
        """n continuations from the policy (item.policy; the default when empty), the reference or the guided mix
        (sample_from="guided", alpha), each scored under that policy."""
        request = m.SampleRequest(item=_item(item), n=n, sample_from=m.enum_value("SampleFrom", f"SAMPLE_FROM_{sample_from.upper()}"),
                                  temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens, stop=list(stop))
        for name, value in [("alpha", alpha), ("seed", seed), ("beta", beta), ("step_delimiter", step_delimiter)]:
            if value is not None:
                setattr(request, name, value)
        reply = self._call("Sample", request)
        return SampleResult(
            samples=[Sample(_scored(s.scores), s.text, m.enum_name("FinishReason", s.finish_reason).removeprefix("FINISH_REASON_").lower())
                     for s in reply.samples],
            seed=reply.seed, beta=reply.beta, prefix_tokens=reply.prefix_tokens)
