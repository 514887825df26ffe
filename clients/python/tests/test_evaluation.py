"""evaluate(): the same rewards as score() on each response, in input order over two clients, and bad rows by row number."""
import json
import pathlib

import grpc
import pytest

from qservice_client import Item, QServiceClient, QServiceError, evaluate, summarize, wilson

REPO = pathlib.Path(__file__).resolve().parents[3]
DEMO = REPO / "data" / "demo-preferences.jsonl"


def test_evaluate_matches_score_in_order_over_two_clients(client, address):
    rows = [json.loads(line) for line in DEMO.read_text().splitlines()[:40]]
    with QServiceClient(address) as second:
        results = list(evaluate([client, second], str(DEMO), pairs_per_request=8))
    assert [r.index for r in results] == list(range(400))
    expected = client.score([Item(prompt=r["prompt"], response=r[k], append_eos=True) for r in rows[:10] for k in ("chosen", "rejected")])
    for i in range(10):
        assert results[i].chosen_reward == pytest.approx(expected[2 * i].reward, abs=1e-5)
        assert results[i].rejected_reward == pytest.approx(expected[2 * i + 1].reward, abs=1e-5)
        assert results[i].chosen_tokens == len(expected[2 * i].token_ids)
        assert results[i].subset == rows[i]["subset"]
    summary = summarize(results)
    correct = sum(r.chosen_reward > r.rejected_reward for r in results)
    assert summary["pairs"] == 400 and summary["accuracy"] == correct / 400
    assert summary["accuracy_interval"] == list(wilson(correct, 400))
    assert summary["accuracy"] > 0.8  # the demo pair ranks the truly better review first most of the time


def test_wilson_interval_by_hand():
    low, high = wilson(4, 6)  # worked out on paper
    assert low == pytest.approx(0.3000, abs=5e-4) and high == pytest.approx(0.9032, abs=5e-4)


def test_bad_rows_and_implicit_prompts(client):
    phone = "Review of the phone:"
    rows = [
        {"prompt": phone, "chosen": " The battery is long.", "rejected": " The fan is loud."},
        {"prompt": phone, "rejected": " The fan is loud."},
        {"prompt": phone, "chosen": " The battery is long.", "rejected": ""},
        {"prompt": phone, "chosen": " The battery is long." * 60, "rejected": " The fan is loud."},
        "not JSON: x",
    ]
    results = list(evaluate(client, rows))
    assert [r.error is None for r in results] == [True, False, False, False, False]
    assert results[1].error == "missing column 'chosen'"
    assert results[2].error == "empty response in 'rejected'"
    assert "context" in results[3].error
    assert summarize(results)["bad_rows"] == 4
    implicit = list(evaluate(client, [{"chosen": phone + " The battery is long.", "rejected": phone + " The fan is loud."}]))
    # The common prefix is "Review of the phone: The ", less its trailing space.
    expected = client.score([Item(prompt=phone + " The", response=" battery is long.", append_eos=True)])
    assert implicit[0].chosen_reward == pytest.approx(expected[0].reward, abs=1e-5)


def _turn(role, content):
    return {"role": role, "content": content}


SYSTEM, USER = _turn("system", "Be brief."), _turn("user", "Review of the phone:")
CHAT = [SYSTEM, USER]
GOOD, BAD = " The battery is long.", " The fan is loud."


def _scored_as_messages(chat, conversations):
    """The rewards of score() on (prompt messages, response) items, as evaluate() should send them."""
    return [s.reward for s in chat.score([Item(messages=turns, response=response, append_eos=True) for turns, response in conversations])]


def test_conversational_rows_score_as_their_conversations(chat_address):
    explicit = [
        {"prompt": CHAT, "chosen": [_turn("assistant", GOOD)], "rejected": [_turn("assistant", BAD)]},
        # A response's earlier turns join the prompt; its last turn's content is what is scored.
        {"prompt": CHAT, "chosen": [_turn("assistant", " Fine."), _turn("user", "And the battery?"), _turn("assistant", GOOD)],
         "rejected": [_turn("assistant", BAD)]},
    ]
    implicit = [{"chosen": [SYSTEM, USER, _turn("assistant", GOOD)], "rejected": [SYSTEM, USER, _turn("assistant", BAD)]}]
    with QServiceClient(chat_address) as chat:
        results = list(evaluate(chat, explicit)) + list(evaluate(chat, implicit))
        expected = _scored_as_messages(chat, [
            (CHAT, GOOD), (CHAT, BAD),
            ([*CHAT, _turn("assistant", " Fine."), _turn("user", "And the battery?")], GOOD), (CHAT, BAD),
            (CHAT, GOOD), (CHAT, BAD)])
    assert [r.error for r in results] == [None, None, None]
    got = [reward for r in results for reward in (r.chosen_reward, r.rejected_reward)]
    assert got == pytest.approx(expected, abs=1e-5)
    assert results[0].margin != pytest.approx(0, abs=1e-5)  # the two answers do score differently


def test_bad_conversational_rows_are_reported_by_row_number(chat_address):
    good = {"prompt": CHAT, "chosen": [_turn("assistant", GOOD)], "rejected": [_turn("assistant", BAD)]}
    rows = [
        good,
        {"prompt": "Review of the phone:", "chosen": [_turn("assistant", GOOD)], "rejected": BAD},
        {"prompt": CHAT, "chosen": [_turn("assistant", GOOD)], "rejected": [{"role": "assistant"}]},
        {"prompt": [{"role": 1, "content": "x"}], "chosen": GOOD, "rejected": BAD},
        {"prompt": CHAT, "chosen": [_turn("assistant", GOOD), "x"], "rejected": BAD},
        {"prompt": [_turn("", "Review of the phone:")], "chosen": GOOD, "rejected": BAD},  # refused by the server alone
        good,
    ]
    implicit = [
        {"chosen": [*CHAT, _turn("assistant", GOOD)], "rejected": [*CHAT, _turn("assistant", BAD)]},
        {"chosen": [SYSTEM, _turn("assistant", GOOD)], "rejected": [USER, _turn("assistant", BAD)]},
    ]
    with QServiceClient(chat_address) as chat:
        results = list(evaluate(chat, rows))
        implicit_results = list(evaluate(chat, implicit))
    assert [r.index for r in results] == list(range(7))
    assert [r.error for r in results[1:5]] == [
        "'chosen' is a conversation but 'prompt' is not",
        "a message in 'rejected' lacks a string 'role' or 'content'",
        "a message in 'prompt' lacks a string 'role' or 'content'",
        "'chosen' mixes messages with other values",
    ]
    assert results[5].error.startswith("rejected by the server: ") and "role is empty" in results[5].error
    assert results[0].error is None and results[6].error is None and summarize(results)["bad_rows"] == 5
    assert implicit_results[0].error is None
    assert implicit_results[1].error == "implicit prompt: 'chosen' and 'rejected' must differ in their last turn only"


def test_conversations_on_a_server_without_a_chat_template_stop_naming_the_row(client):
    rows = [{"prompt": "Review of the phone:", "chosen": GOOD, "rejected": BAD},
            {"prompt": CHAT, "chosen": [_turn("assistant", GOOD)], "rejected": [_turn("assistant", BAD)]}]
    with pytest.raises(QServiceError) as stopped:
        list(evaluate(client, rows))
    assert stopped.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert stopped.value.details.startswith("row 1 is a conversation (a list of messages), and the server cannot render it: ")
    assert "messages need the checkpoint's chat template" in stopped.value.details



def test_evaluate_sends_reproducible_requests_unless_told_otherwise():
    # A stand-in server that records what it receives: whether each request asks to be batched alone (README, Reproducible requests).
    from concurrent import futures
    from qservice_client import _messages as m
    received = []

    def score(request, context):
        received.append(request.reproducible)
        reply = m.ScoreResponse()
        for k in range(len(request.items)):
            reply.results.add(reward=float(k), token_ids=[1])
        return reply

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("qservice.v1.QScorer", {"Score": grpc.unary_unary_rpc_method_handler(
        score, request_deserializer=m.ScoreRequest.FromString, response_serializer=m.ScoreResponse.SerializeToString)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        rows = [{"prompt": [5, 6], "chosen": [7], "rejected": [8]}] * 40
        with QServiceClient(f"127.0.0.1:{port}") as stand_in:
            results = list(evaluate(stand_in, rows))
            assert received == [True] * 3  # 40 rows in requests of 16
            assert [(r.chosen_reward, r.rejected_reward) for r in results[:2]] == [(0.0, 1.0), (2.0, 3.0)]
            received.clear()
            list(evaluate(stand_in, rows, reproducible=False))
            assert received == [False] * 3
    finally:
        server.stop(None)
