"""ImplicitReward: the pair's implicit DPO reward as a TRL GRPO reward function.

    from qservice_client.rewards import ImplicitReward
    trainer = GRPOTrainer(model=..., reward_funcs=[ImplicitReward("127.0.0.1:50051")], ...)

TRL calls it as f(prompts=..., completions=..., completion_ids=..., **dataset_columns) and logs it under its __name__.
"""
import asyncio
import time
from typing import Any, List, Optional, Sequence

import grpc

from . import _messages as m
from .client import QServiceClient
from .errors import QServiceError

_MODES = ("sequence", "step_mean", "step_min")


class ImplicitReward:
    """One float per completion: the implicit reward beta * sum(log pi - log pi_ref) of the completion after its prompt, from a
    QService server (address: its gRPC host:port). All completions of a call go in one Score request; UNAVAILABLE (the server
    loading, draining, restarting) is retried `retries` times, `backoff` seconds apart, doubling.

    - String prompts and completions are sent as text (the server tokenises them as training code does). With
      use_completion_ids=True a string prompt's completion is sent as TRL's completion_ids instead (exactly the generated tokens,
      EOS included): only when the trained model and the served pair share the tokenizer.
    - Conversational ones (lists of {"role", "content"}) send the prompt's messages, which the server renders with the pair's chat
      template, and the completion's assistant content as the response.
    - mode: "sequence" (the reward), "step_mean" or "step_min" (PRIME's process reward over steps split at step_delimiter).
    - A completion with no text is not sent; its reward is None (TRL makes it NaN).
    """

    def __init__(self, address: str = "127.0.0.1:50051", api_key: Optional[str] = None, timeout: Optional[float] = 180.0,
                 beta: Optional[float] = None, append_eos: bool = False, mode: str = "sequence", step_delimiter: str = "\n",
                 policy: str = "", use_completion_ids: bool = False, retries: int = 5, backoff: float = 1.0,
                 name: str = "qservice_implicit_reward"):
        if mode not in _MODES:
            raise ValueError(f"mode is {mode!r}; use one of {', '.join(_MODES)}")
        self.address, self.api_key, self.timeout = address, api_key, timeout
        self.beta, self.append_eos, self.mode, self.step_delimiter = beta, append_eos, mode, step_delimiter
        self.policy, self.use_completion_ids, self.retries, self.backoff = policy, use_completion_ids, retries, backoff
        self.__name__ = name
        self._client: Optional[QServiceClient] = None

    # TRL may pickle reward functions (e.g. to worker processes): the connection is opened again where it is used.
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_client"] = None
        return state

    def _connection(self) -> QServiceClient:
        if self._client is None:
            self._client = QServiceClient(self.address, api_key=self.api_key, timeout=self.timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Optional[Sequence[Sequence[int]]] = None,
                 **dataset_columns) -> List[Optional[float]]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts and {len(completions)} completions; TRL sends one prompt per completion")
        items, sent = [], []
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            ids = completion_ids[i] if completion_ids is not None and self.use_completion_ids else None
            item = self._item(prompt, completion, ids)
            if item is not None:
                items.append(item)
                sent.append(i)
        rewards: List[Optional[float]] = [None] * len(completions)
        if items:
            for i, result in zip(sent, self._score(items)):
                rewards[i] = self._reward(result)
        return rewards

    def as_async(self):
        """The same reward as an `async def` function (TRL runs those concurrently with each other), with the same __name__."""
        async def reward(prompts, completions, completion_ids=None, **dataset_columns):
            return await asyncio.to_thread(self, prompts=prompts, completions=completions, completion_ids=completion_ids, **dataset_columns)
        reward.__name__ = self.__name__
        return reward

    def _item(self, prompt, completion, ids):
        item = m.ScoreItem(append_eos=self.append_eos, policy=self.policy)
        if isinstance(completion, str):
            if not isinstance(prompt, str):
                raise ValueError("a string completion needs a string prompt")
            item.prompt = prompt
            if ids:
                item.response_token_ids.extend(ids)
            elif completion:
                item.response = completion
            else:
                return None
            return item
        # Conversational: the prompt's turns, rendered by the server; the completion's assistant turns are the response.
        for turn in prompt:
            item.messages.add(role=turn["role"], content=turn["content"])
        text = "".join(turn["content"] for turn in completion if turn.get("role", "assistant") == "assistant")
        if not text:
            return None
        item.response = text
        return item

    def _score(self, items):
        request = m.ScoreRequest(items=items)
        if self.beta is not None:
            request.beta = self.beta
        if self.mode != "sequence":
            request.step_delimiter = self.step_delimiter
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return self._connection()._call("Score", request).results
            except QServiceError as e:
                if e.code != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
            time.sleep(delay)
            delay *= 2

    def _reward(self, result) -> float:
        if self.mode == "step_mean":
            return sum(result.step_rewards) / len(result.step_rewards)
        if self.mode == "step_min":
            return min(result.step_rewards)
        return result.reward
