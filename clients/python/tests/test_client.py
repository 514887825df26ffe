import grpc
import pytest

import qservice_client.types as types
from qservice_client import (ExternalGenerator, Item, QServiceClient, QServiceError, ServiceSampler, best_of_n, chunk_beam_search, guided)

PROMPT = "Review of the phone:"


def test_model_info_describes_the_demo_pair(client):
    info = client.model_info()
    assert (info.vocab_size, info.max_context, info.architecture) == (384, 128, "LlamaForCausalLM")
    assert info.eos_token_id is not None and info.beta > 0


def test_credits_sum_to_the_reward_and_q_is_their_running_sum(client):
    good, bad = client.score([Item(prompt=PROMPT, response=" The battery is long. The screen is excellent.", append_eos=True),
                              Item(prompt=PROMPT, response=" The delivery is long. The build is cheap.", append_eos=True)])
    for s in (good, bad):
        assert len(s.token_ids) == len(s.credits) == len(s.q_values)
        assert sum(s.credits) == pytest.approx(s.reward, abs=1e-4)
        running = 0.0
        for credit, q in zip(s.credits, s.q_values):
            running += float(credit)
            assert q == pytest.approx(running, abs=1e-4)
    assert good.reward > bad.reward  # the pair learnt the demo language's reward


def test_steps_and_token_texts(client):
    (s,) = client.score([Item(prompt=PROMPT, response=" The battery is long. The screen is fine.")], include_token_text=True, step_delimiter=".")
    assert len(s.token_texts) == len(s.token_ids)
    assert sum(s.step_rewards) == pytest.approx(s.reward, abs=1e-6) and len(s.step_ends) == 2


def test_score_stream_answers_each_batch_in_order(client):
    batches = [[Item(prompt=PROMPT, response=" The battery is long.")], [Item(prompt=PROMPT, response=" The fan is loud."), Item(prompt=PROMPT, response=" ok")]]
    results = list(client.score_stream(batches))
    assert [len(r) for r in results] == [1, 2]
    assert results[0][0].reward == pytest.approx(client.score(batches[0])[0].reward, abs=1e-5)


def test_bad_input_raises_with_the_status_and_what_to_fix(client):
    with pytest.raises(QServiceError) as error:
        client.score([])
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "no items" in error.value.details
    with pytest.raises(QServiceError) as error:
        client.sample(Item(prompt=PROMPT), n=2, sample_from="guided")
    assert "needs alpha" in error.value.details


def test_score_with_messages_equals_the_rendered_conversation(chat_address):
    # conftest's CHAT_TEMPLATE render of the conversation, without the bos_token the demo tokenizer adds to a text prompt itself.
    rendered = "system:Be brief.\nuser:Review of the phone:\nassistant:"
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]
    with QServiceClient(chat_address) as chat:
        assert chat.model_info().has_chat_template
        as_messages, as_text = chat.score([Item(messages=conversation, response=" The battery is long."),
                                           Item(prompt=rendered, response=" The battery is long.\n")])
    assert as_messages.token_ids == as_text.token_ids and as_messages.prompt_tokens == as_text.prompt_tokens
    assert as_messages.reward == pytest.approx(as_text.reward, abs=1e-5)


def test_messages_on_a_pair_without_a_chat_template_are_refused_naming_them(client):
    with pytest.raises(QServiceError) as refused:
        client.score([Item(messages=[{"role": "user", "content": PROMPT}], response=" The battery is long.")])
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "messages need the checkpoint's chat template" in refused.value.details


def test_next_token_candidates_equal_score_on_prefix_plus_candidate(client):
    (choices,) = client.next_tokens([Item(prompt=PROMPT, response=" The battery is")], top_k=3, rank_by="credit")
    assert [c.credit for c in choices.candidates] == sorted((c.credit for c in choices.candidates), reverse=True)
    prefix = client.score([Item(prompt=PROMPT, response=" The battery is")])[0]
    for c in choices.candidates:
        scored = client.score([Item(prompt=PROMPT, response_ids=prefix.token_ids + [c.id])])[0]
        assert float(scored.credits[-1]) == pytest.approx(c.credit, abs=1e-5)


def test_samples_are_scored_reproducible_and_end_for_a_reason(client):
    first = client.sample(Item(prompt=PROMPT), n=3, max_new_tokens=12, seed=5, temperature=1.5)
    again = client.sample(Item(prompt=PROMPT), n=3, max_new_tokens=12, seed=5, temperature=1.5)
    assert [s.scores.token_ids for s in first.samples] == [s.scores.token_ids for s in again.samples]
    assert first.seed == 5
    for s in first.samples:
        assert s.finish_reason in ("eos", "length")
        rescored = client.score([Item(prompt=PROMPT, response_ids=s.scores.token_ids)])[0]
        assert [float(c) for c in rescored.credits] == pytest.approx([float(c) for c in s.scores.credits], abs=1e-5)


def test_best_of_n_returns_the_argmax_of_its_candidates(client):
    result = best_of_n(ServiceSampler(client, "reference"), PROMPT, n=6, max_tokens=40, seed=3)
    assert len(result.rejected) == 5 and all(result.reward >= c.q for c in result.rejected)


def test_chunk_beam_search_keeps_the_top_w_by_q(client):
    result = chunk_beam_search(ServiceSampler(client, "reference", stop="."), PROMPT, width=2, expansions=3, chunk_tokens=8, max_tokens=30, seed=4)
    for round_ in result.rounds:
        qs = sorted((c.q for c in round_.candidates), reverse=True)
        assert [round_.candidates[i].q for i in round_.kept] == qs[:len(round_.kept)]
    rescored = client.score([Item(prompt=PROMPT, response_ids=result.token_ids)])[0]
    assert [float(c) for c in rescored.credits] == pytest.approx(result.credits, abs=1e-4)


def test_an_external_generator_is_scored_by_the_service(client):
    phrases = [" The battery is great.", " The battery is terrible."]
    ids = [client.score([Item(prompt=PROMPT, response=p)])[0].token_ids for p in phrases]
    generator = ExternalGenerator(client, lambda prompt, response, n, max_new, seed: [(ids[i], phrases[i], True) for i in range(n)])
    result = best_of_n(generator, PROMPT, n=2, max_tokens=20, seed=1)
    assert result.text == " The battery is great."


def test_guided_sampling_is_reproducible(client):
    a, b = guided(client, PROMPT, alpha=3, max_tokens=30, seed=9), guided(client, PROMPT, alpha=3, max_tokens=30, seed=9)
    assert a.token_ids == b.token_ids and a.strategy == "guided-a3"


def test_arrays_are_lists_without_numpy(client, monkeypatch):
    monkeypatch.setattr(types, "_np", None)
    (s,) = client.score([Item(prompt=PROMPT, response=" The battery is long.")])
    assert isinstance(s.credits, list)


def test_the_committed_descriptor_is_current(tmp_path):
    import generate  # clients/python is on the path (pyproject.toml)
    committed = generate.DESCRIPTOR.read_bytes()
    assert generate.generate(tmp_path / "qservice.desc") == committed, "protos changed: run clients/python/generate.py"
