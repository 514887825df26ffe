"""Several policies against one reference through the client, on the HF reference pair: a server with the DPO policy ("dpo")
and the reference itself as a second policy ("sft") gives, per policy, what a server with that policy alone gives."""
import json

import grpc
import pytest

from conftest import REPO, serve
from qservice_client import ExternalGenerator, Item, QServiceClient, QServiceError, ServiceSampler

PAIR = REPO / "tests" / "fixtures" / "hf-reference" / "llama-gqa-dpo-pair"
COMMON = ("--beta", "0.1", "--PrefixCache:Enabled=false")
PAIRS = json.loads((PAIR / "pair_expected.json").read_text())["pairs"]
ITEMS = [Item(prompt_ids=p["prompt_ids"], response_ids=p["response_ids"], id=f"p{i}") for i, p in enumerate(PAIRS)]


@pytest.fixture(scope="module")
def two():
    with serve("--policy", f"dpo={PAIR / 'policy'}", "--policy", f"sft={PAIR / 'reference'}", "--reference", str(PAIR / "reference"),
               *COMMON) as address, QServiceClient(address) as c:
        yield c


@pytest.fixture(scope="module")
def alone():
    """Each policy served alone against the reference: {name: client}."""
    with serve("--policy", str(PAIR / "policy"), "--reference", str(PAIR / "reference"), *COMMON) as dpo, \
            serve("--policy", str(PAIR / "reference"), "--reference", str(PAIR / "reference"), *COMMON) as sft, \
            QServiceClient(dpo) as d, QServiceClient(sft) as s:
        yield {"dpo": d, "sft": s}


def assert_same(got, want):
    assert got.token_ids == want.token_ids and got.prompt_tokens == want.prompt_tokens
    for name in ("policy_logprobs", "reference_logprobs", "credits", "q_values"):
        assert [float(x) for x in getattr(got, name)] == pytest.approx([float(x) for x in getattr(want, name)], abs=1e-5), name
    assert got.reward == pytest.approx(want.reward, abs=1e-5)


def test_model_info_lists_the_policies_in_order(two):
    info = two.model_info()
    assert [p.name for p in info.policies] == ["dpo", "sft"]
    assert [p.model for p in info.policies] == ["policy", "reference"]
    assert all(p.architecture == "LlamaForCausalLM" and p.adapter is None for p in info.policies)
    assert info.policy_model == "dpo"


def test_score_under_several_policies_is_item_major_and_equals_each_policy_alone(two, alone):
    results = two.score(ITEMS, policies=["sft", "dpo"])
    assert [(r.id, r.policy) for r in results] == [(i.id, p) for i in ITEMS for p in ("sft", "dpo")]
    for name, client in alone.items():
        expected = client.score(ITEMS)
        for got, want in zip([r for r in results if r.policy == name], expected):
            assert_same(got, want)
    assert all(float(c) == 0.0 for r in results if r.policy == "sft" for c in r.credits)  # the reference against itself


def test_items_name_their_policy_in_score_and_score_stream(two, alone):
    mixed = [Item(prompt_ids=i.prompt_ids, response_ids=i.response_ids, id=i.id, policy=p) for i, p in zip(ITEMS, ["sft", "dpo", ""])]
    for results in (two.score(mixed), next(two.score_stream([mixed]))):
        assert [r.policy for r in results] == ["sft", "dpo", "dpo"]  # empty: the default, the first
        for item, got in zip(ITEMS, results):
            assert_same(got, alone[got.policy].score([item])[0])
    (streamed,) = list(two.score_stream([ITEMS[:1]], policies=["sft"]))
    assert [r.policy for r in streamed] == ["sft"]


def test_next_tokens_and_sample_under_a_named_policy_equal_that_policy_alone(two, alone):
    prefix = Item(prompt_ids=ITEMS[0].prompt_ids, response_ids=ITEMS[0].response_ids[:2], policy="sft")
    (choices,) = two.next_tokens([prefix], top_k=4, rank_by="policy")
    plain = Item(prompt_ids=prefix.prompt_ids, response_ids=prefix.response_ids)
    (expected,) = alone["sft"].next_tokens([plain], top_k=4, rank_by="policy")
    assert choices.policy == "sft" and [c.id for c in choices.candidates] == [c.id for c in expected.candidates]
    assert [c.policy_logprob for c in choices.candidates] == pytest.approx([c.policy_logprob for c in expected.candidates], abs=1e-5)

    sampled = two.sample(Item(prompt_ids=ITEMS[1].prompt_ids, policy="dpo"), n=2, max_new_tokens=5, seed=7)
    same = alone["dpo"].sample(Item(prompt_ids=ITEMS[1].prompt_ids), n=2, max_new_tokens=5, seed=7)
    assert [s.scores.token_ids for s in sampled.samples] == [s.scores.token_ids for s in same.samples]
    for s, t in zip(sampled.samples, same.samples):
        assert s.scores.policy == "dpo"
        assert_same(s.scores, t.scores)


def test_an_unknown_policy_is_invalid_argument_naming_the_field(two):
    with pytest.raises(QServiceError) as error:
        two.score([Item(prompt_ids=ITEMS[0].prompt_ids, response_ids=ITEMS[0].response_ids, policy="nca")])
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "items[0].policy is 'nca'" in error.value.details and "'dpo', 'sft'" in error.value.details
    with pytest.raises(QServiceError) as error:
        two.score(ITEMS[:1], policies=["dpo", "nca"])
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "policies[1] is 'nca'" in error.value.details


def test_the_decoding_sources_pass_their_policy(client):
    """On the demo pair (text prompts need its tokenizer): its one policy by name gives what the default gives; another
    name is refused."""
    (served,) = client.model_info().policies
    named, _ = ServiceSampler(client, "policy", policy=served.name).continue_("Review of the phone:", [], 2, 8, 3)
    default, _ = ServiceSampler(client, "policy").continue_("Review of the phone:", [], 2, 8, 3)
    assert [c.token_ids for c in named] == [c.token_ids for c in default]
    ids = client.score([Item(prompt="Review of the phone:", response=" The battery is long.")])[0].token_ids
    generate = lambda prompt, response, n, max_new, seed: [(ids, " The battery is long.", True)] * n
    (scored,), _ = ExternalGenerator(client, generate, policy=served.name).continue_("Review of the phone:", [], 1, 8, 1)
    (plain,), _ = ExternalGenerator(client, generate).continue_("Review of the phone:", [], 1, 8, 1)
    assert scored.credits == pytest.approx(plain.credits, abs=1e-5)
    for source in (ServiceSampler(client, "policy", policy="nca"), ExternalGenerator(client, generate, policy="nca")):
        with pytest.raises(QServiceError) as error:
            source.continue_("Review of the phone:", [], 1, 8, 1)
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "policy is 'nca'" in error.value.details
