"""The OpenAI-compatible routes through a real HTTP client (Debian's python3-requests), called and read the way
lm-evaluation-harness's local-completions model calls and reads them (lm_eval/models/openai_completions.py and the
RemoteTokenizer of lm_eval/utils.py, commit 4e7e0d47), and compared with the gRPC client's Score and Sample."""
from operator import itemgetter

import pytest
import requests

from conftest import _free_port, serve
from qservice_client import Item, QServiceClient


@pytest.fixture(scope="module")
def server():
    """The demo pair with its JSON port on a known free port: (base URL, gRPC client)."""
    port = _free_port()
    with serve("--http-api-port", str(port)) as address, QServiceClient(address) as client:
        yield f"http://127.0.0.1:{port}", client


def parse_logprobs(outputs, ctxlens):
    """LocalCompletionsAPI.parse_logprobs, as lm-eval has it."""
    res = []
    if not isinstance(outputs, list):
        outputs = [outputs]
    for out in outputs:
        for choice, ctxlen in zip(sorted(out["choices"], key=itemgetter("index")), ctxlens):
            assert ctxlen > 0
            logprobs = sum(choice["logprobs"]["token_logprobs"][ctxlen:-1])
            tokens_logprobs = choice["logprobs"]["token_logprobs"][ctxlen:-1]
            top_logprobs = choice["logprobs"]["top_logprobs"][ctxlen:-1]
            is_greedy = True
            for tok, top in zip(tokens_logprobs, top_logprobs):
                if tok != max(top.values()):
                    is_greedy = False
                    break
            res.append((logprobs, is_greedy))
    return res


def parse_generations(outputs):
    """LocalCompletionsAPI.parse_generations, as lm-eval has it."""
    res = []
    if not isinstance(outputs, list):
        outputs = [outputs]
    for out in outputs:
        tmp = [None] * len(out["choices"])
        for choices in out["choices"]:
            tmp[choices["index"]] = choices["text"]
        res = res + tmp
    return res


def remote_encode(base, text):
    """RemoteTokenizer.encode."""
    resp = requests.post(f"{base}/tokenize", json={"prompt": text, "add_special_tokens": False}, timeout=30)
    resp.raise_for_status()
    tokens = resp.json().get("tokens")
    assert isinstance(tokens, list)
    return tokens


def test_the_remote_tokenizer_is_detected_as_lm_eval_checks_it(server):
    base, client = server
    info = requests.get(f"{base}/tokenizer_info", timeout=30)
    info.raise_for_status()
    assert isinstance(info.json(), dict) and "eos_token" in info.json()
    assert remote_encode(base, info.json()["eos_token"])[0] == client.model_info().eos_token_id
    ids = remote_encode(base, "Review of the phone:")
    assert requests.post(f"{base}/detokenize", json={"tokens": ids}, timeout=30).json()["prompt"] == "Review of the phone:"


def test_loglikelihood_as_lm_eval_requests_and_reads_it_is_scores(server):
    base, client = server
    pairs = [("Review of the phone:", " The battery is long."), ("Review of the delivery:", " The delivery is long."),
             ("Review of the phone:", " The")]
    prompts, ctxlens = [], []
    for context, continuation in pairs:
        context_enc, continuation_enc = remote_encode(base, context), remote_encode(base, continuation)
        prompts.append(context_enc + continuation_enc)
        ctxlens.append(len(context_enc))
    payload = {"model": "policy", "prompt": prompts, "temperature": 0, "max_tokens": 1, "logprobs": 1, "seed": 1234, "echo": True}
    resp = requests.post(f"{base}/v1/completions", json=payload, timeout=120)
    resp.raise_for_status()
    results = parse_logprobs(resp.json(), ctxlens)
    assert len(results) == len(pairs)
    for prompt, ctxlen, (logprob, is_greedy) in zip(prompts, ctxlens, results):
        scored = client.score([Item(prompt_ids=prompt[:ctxlen], response_ids=prompt[ctxlen:])])[0]
        assert logprob == pytest.approx(sum(float(x) for x in scored.policy_logprobs), abs=1e-4)
        greedy = all(client.next_tokens([Item(prompt_ids=prompt[:ctxlen + t], response_ids=[])], top_k=1)[0].candidates[0].id == prompt[ctxlen + t]
                     for t in range(len(prompt) - ctxlen))
        assert is_greedy == greedy
    assert [g for _, g in results] != [False] * len(results), "the demo policy's ' The' after the prompt is its most likely token"


def test_generate_until_as_lm_eval_requests_and_reads_it_is_greedy_sample(server):
    base, client = server
    contexts = ["Review of the phone:", "Review of the kettle:"]
    payload = {"prompt": contexts, "model": "policy", "max_tokens": 32, "temperature": 0, "stop": ["."], "seed": 1234}
    resp = requests.post(f"{base}/v1/completions", json=payload, timeout=120)
    resp.raise_for_status()
    texts = parse_generations(resp.json())
    for context, text in zip(contexts, texts):
        sampled = client.sample(Item(prompt=context), top_k=1, max_new_tokens=32, stop=["."], seed=1).samples[0].text
        assert text == sampled[:sampled.index(".")]


def test_errors_come_back_in_openais_shape(server):
    base, _ = server
    resp = requests.post(f"{base}/v1/completions", json={"model": "gpt-4", "prompt": "x"}, timeout=30)
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model" and error["type"] == "invalid_request_error"
    resp = requests.post(f"{base}/v1/completions", json={"prompt": "x", "top_p": 2}, timeout=30)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "top_p"
