"""The reward protocols as their clients call them: OpenRLHF's /get_reward over aiohttp (concurrent single-sample requests and the
empty lists of a sharded batch, as openrlhf/utils/agent.py _fetch_rewards_via_http sends them), and ImplicitReward called with the
keyword arguments TRL's GRPOTrainer._calculate_rewards passes. Every reward equals Score's on the same tokens (1e-5)."""
import asyncio
import inspect
import pickle
import time

import aiohttp
import grpc
import pytest

from conftest import API_ADDRESSES
from qservice_client import Item, QServiceError
from qservice_client.rewards import ImplicitReward

EOS = "<|endoftext|>"
PROMPTS = ["Review of the phone:", "Review of the delivery:", "Review of the screen:"]
RESPONSES = [" The battery is long.", " The delivery is long. The box is awful.", " The screen is excellent."]


@pytest.fixture(scope="module")
def api(address):
    if address not in API_ADDRESSES:
        pytest.fail("these tests need the JSON port of a server they started (unset QSERVICE_ADDRESS)")
    return f"http://{API_ADDRESSES[address]}"


def _ids(client, text):
    """text tokenised without added special tokens: what Score makes of a response (special-token strings become their ids)."""
    return client.score([Item(prompt="x", response=text)])[0].token_ids


async def _post_request(url, data):
    # OpenRLHF's _post_request: a session per request, raise_for_status, then the JSON body.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
        async with session.post(url, json=data) as response:
            response.raise_for_status()
            return await response.json()


def test_openrlhf_concurrent_single_sample_requests_get_scores_reward_and_empty_lists_get_empty_lists(api, client):
    samples = [(PROMPTS[i % 3], RESPONSES[i % 3] + EOS) for i in range(24)]

    async def fetch_all():
        tasks = [_post_request(f"{api}/get_reward", {"query": [p + r], "prompts": [p], "labels": [None]}) for p, r in samples]
        tasks.append(_post_request(f"{api}/get_reward", {"query": [], "prompts": [], "labels": []}))
        return await asyncio.gather(*tasks)

    *answers, empty = asyncio.run(fetch_all())
    assert empty == {"rewards": [], "scores": [], "extra_logs": {}}
    eos = client.model_info().eos_token_id
    for (prompt, response), rewards_info in zip(samples, answers):
        prompt_ids, response_ids = _ids(client, prompt), _ids(client, response)
        assert response_ids[-1] == eos  # the EOS string in the query is the EOS token
        scored = client.score([Item(prompt_ids=prompt_ids, response_ids=response_ids)])[0]
        # Read as OpenRLHF reads it: rewards_info["rewards"], ["scores"], ["extra_logs"], one entry per query.
        assert rewards_info["rewards"][0] == pytest.approx(scored.reward, abs=1e-5)
        assert rewards_info["scores"] == rewards_info["rewards"]
        assert rewards_info["extra_logs"]["qservice_tokens_scored"] == [len(response_ids)]
        assert rewards_info["extra_logs"]["qservice_min_q"][0] == pytest.approx(min(scored.q_values), abs=1e-5)


def test_slimes_remote_rm_gets_a_number(api, client):
    async def remote_rm():
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{api}/reward", json={"prompt": PROMPTS[0], "response": RESPONSES[0], "label": "x"}) as resp:
                resp.raise_for_status()
                return await resp.json()

    reward = asyncio.run(remote_rm())
    scored = client.score([Item(prompt_ids=_ids(client, PROMPTS[0]), response_ids=_ids(client, RESPONSES[0]))])[0]
    assert isinstance(reward, float) and reward == pytest.approx(scored.reward, abs=1e-5)


def _trl_kwargs(prompts, completions, completion_ids):
    # What GRPOTrainer._calculate_rewards passes: the dataset's other columns, trainer_state, log_extra and log_metric.
    return dict(prompts=prompts, completions=completions, completion_ids=completion_ids, answer=["a"] * len(prompts),
                trainer_state=object(), log_extra=lambda *a, **k: None, log_metric=lambda *a, **k: None)


def test_implicit_reward_called_as_trl_calls_it_equals_score(address, client):
    reward_func = ImplicitReward(address)
    assert reward_func.__name__ == "qservice_implicit_reward"
    prompts = PROMPTS + [PROMPTS[0]]
    completions = RESPONSES + [""]
    ids = [_ids(client, c) if c else [] for c in completions]
    rewards = reward_func(**_trl_kwargs(prompts, completions, ids))
    expected = [s.reward for s in client.score([Item(prompt=p, response=c) for p, c in zip(PROMPTS, RESPONSES)])]
    assert rewards[:3] == pytest.approx(expected, abs=1e-5)
    assert rewards[3] is None  # nothing to score: TRL makes it NaN
    # use_completion_ids sends TRL's completion ids as the response: the same tokens here.
    by_ids = ImplicitReward(address, use_completion_ids=True)(**_trl_kwargs(prompts, completions, ids))
    assert by_ids[:3] == pytest.approx(expected, abs=1e-5)
    # step_min: the lowest of Score's step rewards.
    steps = client.score([Item(prompt=PROMPTS[1], response=RESPONSES[1])], step_delimiter=".")[0].step_rewards
    step_min = ImplicitReward(address, mode="step_min", step_delimiter=".")(**_trl_kwargs(PROMPTS[1:2], RESPONSES[1:2], [[]]))
    assert len(steps) >= 2 and step_min == pytest.approx([min(steps)], abs=1e-5)
    # TRL may pickle reward functions; the copy reconnects.
    assert pickle.loads(pickle.dumps(reward_func))(**_trl_kwargs(PROMPTS[:1], RESPONSES[:1], [[]])) == pytest.approx(expected[:1], abs=1e-5)


def test_the_async_form_is_a_coroutine_function_trl_gathers(address, client):
    reward_func = ImplicitReward(address, name="dpo_reward").as_async()
    assert inspect.iscoroutinefunction(reward_func) and reward_func.__name__ == "dpo_reward"

    async def gather():
        return await asyncio.gather(reward_func(**_trl_kwargs(PROMPTS, RESPONSES, [[]] * 3)), reward_func(**_trl_kwargs(PROMPTS[:1], RESPONSES[:1], [[]])))

    both = asyncio.run(gather())
    expected = [s.reward for s in client.score([Item(prompt=p, response=c) for p, c in zip(PROMPTS, RESPONSES)])]
    assert both[0] == pytest.approx(expected, abs=1e-5) and both[1] == pytest.approx(expected[:1], abs=1e-5)


def test_conversational_completions_send_the_prompts_messages(address):
    # The server renders messages with the pair's chat template; the demo pair has none, so it names what is missing.
    prompts = [[{"role": "user", "content": "Review the phone."}]]
    completions = [[{"role": "assistant", "content": " The battery is long."}]]
    with pytest.raises(QServiceError) as refused:
        ImplicitReward(address)(**_trl_kwargs(prompts, completions, [[]]))
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT and "chat template" in refused.value.details


def test_unavailable_is_retried_then_raised():
    reward_func = ImplicitReward("127.0.0.1:1", retries=2, backoff=0.2, timeout=5)
    start = time.time()
    with pytest.raises(QServiceError) as failed:
        reward_func(prompts=PROMPTS[:1], completions=RESPONSES[:1], completion_ids=[[]])
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE
    assert time.time() - start >= 0.2 + 0.4  # two waits, doubling
