"""Preference evaluation: the pair as a reward model on (prompt, chosen, rejected) rows, as `qservice eval` does it.

evaluate() yields one PairResult per row, in input order, bad rows included (with .error); summarize() gives accuracy with
its 95 % Wilson interval and the margins. Rows come from a JSONL file (read a line at a time) or any iterable of dicts, in
TRL's formats with strings, token-id lists or conversations: explicit prompt, or implicit (no prompt column: the prompt is
the common prefix of chosen and rejected, stepped back over one space as TRL's extract_prompt does). A conversation (a list
of {"role", "content"} messages) goes as ScoreItem.messages, rendered by the server with the pair's chat template: an
explicit prompt's turns, then a response's turns but its last, whose content is the response; an implicit prompt's
chosen and rejected must differ in their last turn only. A server without a chat template stops the evaluation with a
QServiceError naming the row.
Parquet: read it with pyarrow and pass the rows (pyarrow is not a dependency; Debian 12 does not package it).
"""
import json
import math
import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import _messages as m
from .errors import QServiceError

Z95 = 1.959963984540054


@dataclass
class PairResult:
    index: int
    chosen_reward: float = 0.0
    rejected_reward: float = 0.0
    chosen_tokens: int = 0
    rejected_tokens: int = 0
    prompt_tokens: int = 0
    subset: Optional[str] = None
    error: Optional[str] = None

    @property
    def margin(self) -> float:
        return self.chosen_reward - self.rejected_reward

    @property
    def correct(self) -> bool:
        """RewardBench's rule: the chosen reward strictly higher (a tie is wrong)."""
        return self.error is None and self.chosen_reward > self.rejected_reward


def read_jsonl(path: str) -> Iterator[Union[dict, str]]:
    """The rows of a JSONL file, one at a time; a line that is not a JSON object comes as an error string."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                yield f"not JSON: {e}"
                continue
            yield row if isinstance(row, dict) else "the line is not a JSON object"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _kind(value, column: str) -> str:
    """"text", "ids" or "messages": what a prompt or response column holds, told apart as the C# client does."""
    if isinstance(value, str):
        return "text"
    if not isinstance(value, list):
        raise ValueError(f"'{column}' is neither a string, a list of token ids nor a list of messages")
    if not value:
        raise ValueError(f"'{column}' is an empty list")
    if isinstance(value[0], dict):
        return "messages"
    if _is_int(value[0]):
        return "ids"
    raise ValueError(f"'{column}' is neither a string, a list of token ids nor a list of messages")


def _ids(value) -> List[int]:
    if not all(_is_int(v) for v in value):
        raise ValueError("a token id list holds a non-integer")
    return value


def _turns(value, column: str) -> List[Tuple[str, str]]:
    """A conversation's (role, content) turns; a message without string role and content makes the row bad."""
    turns = []
    for message in value:
        if not isinstance(message, dict):
            raise ValueError(f"'{column}' mixes messages with other values")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise ValueError(f"a message in '{column}' lacks a string 'role' or 'content'")
        turns.append((role, content))
    return turns


def _add_turns(item, turns: Sequence[Tuple[str, str]]) -> None:
    for role, content in turns:
        item.messages.add(role=role, content=content)


def _require_response(item, column: str):
    if not item.response and not item.response_token_ids:
        raise ValueError(f"empty response in '{column}'")
    return item


def _item(prompt, response, prompt_column: str, column: str):
    """The explicit-prompt item; a conversational response (TRL: [{"role": "assistant", ...}]) is its last turn's content,
    its earlier turns, if any, joining the prompt's conversation."""
    item = m.ScoreItem()
    kind = _kind(prompt, prompt_column)
    if kind == "text":
        item.prompt = prompt
    elif kind == "ids":
        item.prompt_token_ids.extend(_ids(prompt))
    else:
        _add_turns(item, _turns(prompt, prompt_column))
    kind = _kind(response, column)
    if kind == "text":
        item.response = response
    elif kind == "ids":
        item.response_token_ids.extend(_ids(response))
    else:
        turns = _turns(response, column)
        if not item.messages and (item.prompt or item.prompt_token_ids):
            raise ValueError(f"'{column}' is a conversation but '{prompt_column}' is not")
        _add_turns(item, turns[:-1])
        item.response = turns[-1][1]
    return _require_response(item, column)


def _split_implicit(chosen, rejected, chosen_column: str, rejected_column: str):
    """The implicit-prompt items: the prompt is the common prefix (TRL's extract_prompt: text steps back over one space);
    conversations must differ in their last turn only, the assistant's answer."""
    kind = _kind(chosen, chosen_column)
    if _kind(rejected, rejected_column) != kind:
        raise ValueError(f"'{chosen_column}' and '{rejected_column}' are of different kinds")
    if kind == "ids":
        chosen, rejected = _ids(chosen), _ids(rejected)
    elif kind == "messages":
        chosen, rejected = _turns(chosen, chosen_column), _turns(rejected, rejected_column)
    n = 0
    while n < len(chosen) and n < len(rejected) and chosen[n] == rejected[n]:
        n += 1
    if kind == "text" and n > 0 and chosen[n - 1] == " ":
        n -= 1
    if kind == "messages" and (len(chosen) - n != 1 or len(rejected) - n != 1):
        raise ValueError(f"implicit prompt: '{chosen_column}' and '{rejected_column}' must differ in their last turn only")
    return (_implicit_item(kind, chosen[:n], chosen[n:], chosen_column), _implicit_item(kind, chosen[:n], rejected[n:], rejected_column))


def _implicit_item(kind: str, prompt, response, column: str):
    item = m.ScoreItem()
    if kind == "text":
        item.prompt, item.response = prompt, response
    elif kind == "ids":
        item.prompt_token_ids.extend(prompt)
        item.response_token_ids.extend(response)
    else:
        _add_turns(item, prompt)
        item.response = response[0][1]
    return _require_response(item, column)


class _Parser:
    def __init__(self, prompt: str, chosen: str, rejected: str, subset: str, append_eos: bool):
        self.columns = (prompt, chosen, rejected, subset)
        self.append_eos = append_eos
        self.implicit: Optional[bool] = None

    def parse(self, index: int, row: Union[dict, str]):
        """(index, subset, (chosen item, rejected item) or None, error or None)."""
        prompt, chosen, rejected, subset_column = self.columns
        if isinstance(row, str):
            return index, None, None, row
        subset = row.get(subset_column)
        subset = None if subset is None else str(subset)
        if self.implicit is None:
            self.implicit = prompt not in row
        for name in ([chosen, rejected] if self.implicit else [prompt, chosen, rejected]):
            if row.get(name) is None:
                return index, subset, None, f"missing column '{name}'"
        try:
            if self.implicit:
                pair = _split_implicit(row[chosen], row[rejected], chosen, rejected)
            else:
                pair = (_item(row[prompt], row[chosen], prompt, chosen), _item(row[prompt], row[rejected], prompt, rejected))
        except ValueError as e:
            return index, subset, None, str(e)
        for item, side in zip(pair, ("chosen", "rejected")):
            item.id, item.append_eos = f"{index}/{side}", self.append_eos
        return index, subset, pair, None


def evaluate(clients, rows: Union[str, Iterable[Union[dict, str]]], prompt_column: str = "prompt", chosen_column: str = "chosen",
             rejected_column: str = "rejected", subset_column: str = "subset", append_eos: bool = True, pairs_per_request: int = 16,
             requests_per_client: int = 2, beta: Optional[float] = None, reproducible: bool = True) -> Iterator[PairResult]:
    """Scores both responses of every pair and yields PairResults in input order.

    clients: a QServiceClient or a list of them (work is spread over them, results stay in order). rows: a JSONL path or an
    iterable of dicts. Chosen and rejected go in one request side by side, so the server's prefix cache computes a prompt once;
    requests cover rows [k*P, (k+1)*P) (P = pairs_per_request). A request the server rejects as bad input (e.g. a pair over the
    context) is retried pair by pair, so that row alone gets the server's message as its error; a conversational row the server
    cannot render (no chat template) raises QServiceError naming the row instead, since every such row would fail alike.
    reproducible (default): each request is batched alone on the server (ScoreRequest.reproducible), so a rerun gets the same
    bits; False lets the server batch it with other work."""
    clients = list(clients) if isinstance(clients, (list, tuple)) else [clients]
    parser = _Parser(prompt_column, chosen_column, rejected_column, subset_column, append_eos)
    source = read_jsonl(rows) if isinstance(rows, str) else rows
    parsed = (parser.parse(i, row) for i, row in enumerate(source))

    def batches():
        batch = []
        for p in parsed:
            batch.append(p)
            if (p[0] + 1) % pairs_per_request == 0:
                yield batch
                batch = []
        if batch:
            yield batch

    def score(batch, client):
        good = [p for p in batch if p[2] is not None]
        scored: Dict[int, PairResult] = {}
        if good:
            try:
                for p, r in zip(good, _score(client, good, beta, reproducible)):
                    scored[p[0]] = r
            except QServiceError as e:
                if e.code.name != "INVALID_ARGUMENT":
                    raise
                if len(good) == 1:
                    scored[good[0][0]] = _rejected(good[0], e)
                else:
                    for p in good:  # one bad pair fails the request: find it
                        scored[p[0]] = _score_alone(client, p, beta, reproducible)
        return [scored[p[0]] if p[2] is not None else PairResult(p[0], subset=p[1], error=p[3]) for p in batch]

    workers = len(clients) * requests_per_client
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        for k, batch in enumerate(batches()):
            pending.append(pool.submit(score, batch, clients[k % len(clients)]))
            if len(pending) >= workers:
                yield from pending.pop(0).result()
        for future in pending:
            yield from future.result()


def _score_alone(client, pair, beta, reproducible) -> PairResult:
    try:
        return _score(client, [pair], beta, reproducible)[0]
    except QServiceError as e:
        if e.code.name != "INVALID_ARGUMENT":
            raise
        return _rejected(pair, e)


def _rejected(pair, e: QServiceError) -> PairResult:
    # A server without a chat template refuses every conversational row alike: stop with its reason, as `qservice eval` does.
    if "chat template" in e.details.lower():
        raise QServiceError(e.code, f"row {pair[0]} is a conversation (a list of messages), and the server cannot render it: {e.details}") from e
    return PairResult(pair[0], subset=pair[1], error=f"rejected by the server: {e.details}")


def _score(client, pairs, beta, reproducible) -> List[PairResult]:
    request = m.ScoreRequest(items=[item for p in pairs for item in p[2]], reproducible=reproducible)
    if beta is not None:
        request.beta = beta
    results = client._call("Score", request).results
    return [PairResult(p[0], results[2 * i].reward, results[2 * i + 1].reward, len(results[2 * i].token_ids), len(results[2 * i + 1].token_ids),
                       results[2 * i].prompt_tokens, p[1]) for i, p in enumerate(pairs)]


def wilson(correct: int, n: int, z: float = Z95) -> Tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default)."""
    if n == 0:
        return math.nan, math.nan
    p = correct / n
    center, spread = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (center - spread) / (1 + z * z / n), (center + spread) / (1 + z * z / n)


def summarize(results: Sequence[PairResult]) -> dict:
    """pairs, accuracy, accuracy_interval (95 % Wilson), mean_margin, median_margin, per-subset accuracy and bad_rows (a count;
    bad_row_list has each bad row's index and error), as `qservice eval --json` names them."""
    good = [r for r in results if r.error is None]
    margins = [r.margin for r in good]
    correct = sum(r.correct for r in good)
    subsets: Dict[str, List[PairResult]] = {}
    for r in good:
        if r.subset is not None:
            subsets.setdefault(r.subset, []).append(r)
    return {
        "rows": len(results), "pairs": len(good), "accuracy": correct / len(good) if good else math.nan,
        "accuracy_interval": list(wilson(correct, len(good))),
        "mean_margin": statistics.fmean(margins) if margins else math.nan,
        "median_margin": statistics.median(margins) if margins else math.nan,
        "subsets": {k: {"pairs": len(v), "accuracy": sum(r.correct for r in v) / len(v)} for k, v in sorted(subsets.items())},
        "bad_rows": len(results) - len(good),
        "bad_row_list": [{"index": r.index, "error": r.error} for r in results if r.error is not None],
    }
