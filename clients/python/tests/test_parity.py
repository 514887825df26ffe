"""What the Python client exposes of the proto, as the C# client (the generated classes) does: token offsets,
score_stream's options, the responses' beta and model names, ModelInfo's limits, and beta in the decoding sources."""
import grpc
import pytest

from qservice_client import ExternalGenerator, Item, QServiceError, ScoreResults, ServiceSampler, best_of_n

PROMPT = "Review of the phone:"
# ASCII words, then a two-byte and a four-byte character that the byte-level tokenizer splits into byte tokens.
RESPONSE = " The battery is long. The fan is loud. Naïve UI 👍"


def test_char_offsets_are_the_documented_code_point_offsets(client):
    (s,) = client.score([Item(prompt=PROMPT, response=" The battery is long.")], include_token_text=True)
    assert s.token_texts == [" The", " battery", " is", " long", "."]
    assert list(zip(s.char_starts, s.char_ends)) == [(0, 4), (4, 12), (12, 15), (15, 20), (20, 21)]


def test_slicing_the_response_by_the_offsets_gives_each_token(client):
    (s,) = client.score([Item(prompt=PROMPT, response=RESPONSE, append_eos=True)], include_token_text=True)
    n = len(s.token_ids)
    assert len(s.token_texts) == len(s.char_starts) == len(s.char_ends) == n
    # The appended EOS has no place in the response text.
    assert (s.token_texts[-1], s.char_starts[-1], s.char_ends[-1]) == ("<|endoftext|>", -1, -1)
    whole = [t for t in range(n - 1) if RESPONSE[s.char_starts[t]:s.char_ends[t]] == s.token_texts[t]]
    pieces = [t for t in range(n - 1) if t not in whole]
    # Every token of whole characters slices out as its text; that is all of them up to "Na".
    assert whole[:12] == list(range(12)) and "".join(s.token_texts[t] for t in whole) == RESPONSE.replace("ï", "").replace("👍", "")
    # The byte tokens of "ï" (2) and "👍" (4) each span exactly their character, in code points (Python's str indices).
    assert [RESPONSE[s.char_starts[t]:s.char_ends[t]] for t in pieces] == ["ï"] * 2 + ["👍"] * 4
    assert s.char_starts[pieces[-1]] == len(RESPONSE) - 1 and s.char_ends[pieces[-1]] == len(RESPONSE)
    # Offsets never go backwards and cover the whole response.
    assert s.char_starts[0] == 0 and all(s.char_starts[t] <= s.char_starts[t + 1] for t in range(n - 2))


def test_tokens_given_as_ids_have_no_offsets(client):
    ids = client.score([Item(prompt=PROMPT, response=" The fan")])[0].token_ids
    (s,) = client.score([Item(prompt=PROMPT, response_ids=ids)], include_token_text=True)
    assert s.token_texts == [" The", " fan"] and s.char_starts == [-1, -1] and s.char_ends == [-1, -1]


def test_without_include_token_text_there_are_no_texts_or_offsets(client):
    (s,) = client.score([Item(prompt=PROMPT, response=" The fan")])
    assert s.token_texts == [] and s.char_starts == [] and s.char_ends == []


def test_score_stream_takes_scores_options_and_returns_what_score_does(client):
    batches = [[Item(prompt=PROMPT, response=RESPONSE, append_eos=True)],
               [Item(prompt=PROMPT, response=" The battery is long. The screen is fine."), Item(prompt=PROMPT, response=" ok. fine")]]
    streamed = list(client.score_stream(batches, beta=0.2, include_token_text=True, step_delimiter=". "))
    assert [len(r) for r in streamed] == [1, 2]
    for batch, results in zip(batches, streamed):
        expected = client.score(batch, beta=0.2, include_token_text=True, step_delimiter=". ")
        assert results.beta == pytest.approx(0.2) and results.policy_model == expected.policy_model
        for got, want in zip(results, expected):
            assert got.token_ids == want.token_ids
            assert got.token_texts == want.token_texts and len(got.token_texts) == len(got.token_ids)
            assert (got.char_starts, got.char_ends) == (want.char_starts, want.char_ends) and len(got.char_starts) == len(got.token_ids)
            assert got.step_ends == want.step_ends and len(got.step_ends) >= 2
            assert got.step_rewards == pytest.approx(want.step_rewards, abs=1e-5)
            assert got.reward == pytest.approx(want.reward, abs=1e-5)
    # Three clauses: each ". " ends a step at the token holding its space (" The", then the lone " " before "Naïve"),
    # and the appended EOS joins the last step.
    first = streamed[0][0]
    assert len(first.step_ends) == 3 and first.step_ends[-1] == len(first.token_ids) - 1
    assert [RESPONSE[first.char_starts[e]:first.char_ends[e]] for e in first.step_ends[:2]] == [" The", " "]
    assert [first.char_starts[e] for e in first.step_ends[:2]] == [RESPONSE.index(". ") + 1, RESPONSE.rindex(". ") + 1]


def test_score_stream_beta_scales_the_credits(client):
    batch = [Item(prompt=PROMPT, response=" The battery is long.")]
    (default,) = next(client.score_stream([batch]))
    (doubled,) = next(client.score_stream([batch], beta=2 * client.model_info().beta))
    assert [float(c) for c in doubled.credits] == pytest.approx([2 * float(c) for c in default.credits], abs=1e-5)


def test_score_and_next_tokens_return_the_beta_used_and_the_models(client):
    info = client.model_info()
    results = client.score([Item(prompt=PROMPT, response=" The battery is long.")])
    assert isinstance(results, ScoreResults) and isinstance(results, list) and len(results) == 1
    assert results.beta == pytest.approx(info.beta)
    assert (results.policy_model, results.reference_model) == (info.policy_model, info.reference_model) == ("policy", "reference")
    assert client.score([Item(prompt=PROMPT, response=" ok")], beta=0.25).beta == pytest.approx(0.25)
    choices = client.next_tokens([Item(prompt=PROMPT, response=" The")], top_k=2, beta=0.3)
    assert len(choices) == 1 and choices.beta == pytest.approx(0.3)
    assert client.next_tokens([Item(prompt=PROMPT, response=" The")], top_k=2).beta == pytest.approx(info.beta)


def test_model_info_has_the_reference_architecture_and_the_limits(client):
    info = client.model_info()
    assert info.reference_architecture == info.policy_architecture == info.architecture == "LlamaForCausalLM"
    assert info.max_batch_tokens > 0 and info.max_items_per_request > 0 and info.max_tokens_per_request > 0
    # They are the limits in force: a request at max_items_per_request is served, one over it refused.
    assert len(client.score([Item(prompt=PROMPT, response=" ok")] * info.max_items_per_request)) == info.max_items_per_request
    with pytest.raises(QServiceError) as error:
        client.score([Item(prompt=PROMPT, response=" ok")] * (info.max_items_per_request + 1))
    assert error.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_service_sampler_passes_beta(client):
    beta = client.model_info().beta
    plain, _ = ServiceSampler(client, "reference").continue_(PROMPT, [], 2, 10, 11)
    scaled, _ = ServiceSampler(client, "reference", beta=3 * beta).continue_(PROMPT, [], 2, 10, 11)
    assert [c.token_ids for c in plain] == [c.token_ids for c in scaled]  # the reference does not depend on beta
    for p, s in zip(plain, scaled):
        assert s.credits == pytest.approx([3 * c for c in p.credits], abs=1e-5) and s.reward == pytest.approx(3 * p.reward, abs=1e-4)


def test_external_generator_passes_beta(client):
    beta = client.model_info().beta
    phrases = [" The battery is great.", " The battery is terrible."]
    ids = [client.score([Item(prompt=PROMPT, response=p)])[0].token_ids for p in phrases]
    generate = lambda prompt, response, n, max_new, seed: [(ids[i], phrases[i], True) for i in range(n)]
    plain = best_of_n(ExternalGenerator(client, generate), PROMPT, n=2, max_tokens=20, seed=1)
    scaled = best_of_n(ExternalGenerator(client, generate, beta=2 * beta), PROMPT, n=2, max_tokens=20, seed=1)
    assert scaled.text == plain.text and scaled.reward == pytest.approx(2 * plain.reward, abs=1e-4)
    assert scaled.credits == pytest.approx([2 * c for c in plain.credits], abs=1e-5)
