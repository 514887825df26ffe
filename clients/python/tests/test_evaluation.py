"""evaluate(): the same rewards as score() on each response, in input order over two clients, and bad rows by row number."""
import json
import pathlib

import pytest

from qservice_client import Item, QServiceClient, evaluate, summarize, wilson

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
