"""The Gemini Batch JSONL file bench/ingest.py accepts and exports.

Seeded and self-contained: prompts of 200-800 characters built from a word
list (a few non-ASCII words among them), keys, a system instruction on about
30 % of the lines and a generation config on about 50 % (in both the SDK's and
the REST API's spelling); `generate_file` writes it and says what it holds.
A helper module (bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

FILENAME = "eval-batch.jsonl"

_WORD_TEXT = (
    "the model answer question data set results evaluation accuracy reviewer sample "
    "customer product support ticket delivery price quality battery screen update app "
    "account payment refund order week month report study participants method analysis "
    "paper section table figure baseline experiment training test prompt response "
    "language French German Spanish translation summary entity city company river "
    "mountain history science policy market energy climate health school teacher student "
    "because although however therefore while after before during under over between "
    "good bad slow fast clear unclear helpful useless broken working new old large small "
    "early late often rarely never always usually probably clearly really quite very "
    "is was were are has had will would could should might must can does did "
    "says found shows reports claims suggests explains compares describes lists "
    "a an of to in on for with by from as at about into than this that these those it they"
)
_WORDS = tuple(_WORD_TEXT.split())
_RARE_WORDS = ("café", "naïve", "résumé", "Zürich", "São Paulo", "“quoted”", "déjà vu", "Ω")
_TASKS = (
    "Summarize the following customer review in two sentences, keeping the product name:",
    "Classify the sentiment of this support ticket as positive, neutral or negative, "
    "and explain why in one line:",
    "Extract every person, organisation and place named in the passage below, as a JSON list:",
    "Translate the following paragraph into French, keeping technical terms in English:",
    "Write three quiz questions, with their answers, about the text below:",
    "Rate from 1 to 10 how well the answer below addresses the question, and justify it:",
    "Rewrite the paragraph below in plain English for a twelve-year-old reader:",
)
_SYSTEMS = (
    "You are a careful annotator. Answer only with the label requested, nothing else.",
    "You are a helpful assistant for a research team evaluating customer feedback. "
    "Be concise, factual and neutral; never invent details that are not in the text.",
    "Respond in valid JSON only. Use double quotes, no trailing commas, no comments.",
    "You are grading model outputs for an academic benchmark. Be strict and consistent: "
    "the same answer must always receive the same score, whatever its position.",
)


def _prompt(rnd: random.Random) -> str:
    target = rnd.randint(200, 800)
    parts = [rnd.choice(_TASKS), "\n\n"]
    size = len(parts[0]) + 2
    while size < target:
        words = rnd.choices(_WORDS, k=rnd.randint(8, 20))
        if rnd.random() < 0.1:
            words[rnd.randrange(len(words))] = rnd.choice(_RARE_WORDS)
        sentence = " ".join(words).capitalize() + rnd.choice((". ", ". ", ". ", "? ", "! "))
        parts.append(sentence)
        size += len(sentence)
    text = "".join(parts)[:target]
    return text[:-1] + "." if text.endswith(" ") else text


def generate_file(path: Path, lines: int, *, seed: int) -> dict[str, Any]:
    """Write `lines` Gemini Batch lines; return what the file holds."""
    rnd = random.Random(seed)
    chars = []
    systems = configs = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for number in range(1, lines + 1):
            prompt = _prompt(rnd)
            chars.append(len(prompt))
            request: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
            if rnd.random() < 0.3:
                systems += 1
                request["system_instruction"] = {"parts": [{"text": rnd.choice(_SYSTEMS)}]}
            if rnd.random() < 0.5:
                configs += 1
                temperature = rnd.choice((0.0, 0.2, 0.7, 1.0))
                tokens = rnd.choice((256, 512, 1024, 2048))
                if rnd.random() < 0.3:  # the REST API's own spelling
                    request["generationConfig"] = {
                        "temperature": temperature,
                        "maxOutputTokens": tokens,
                    }
                else:
                    request["generation_config"] = {
                        "temperature": temperature,
                        "max_output_tokens": tokens,
                    }
            line = {"key": f"eval-{number:06d}", "request": request}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return {
        "lines": lines,
        "bytes": path.stat().st_size,
        "prompt_chars_mean": round(sum(chars) / len(chars), 1) if chars else 0,
        "prompt_chars_min": min(chars, default=0),
        "prompt_chars_max": max(chars, default=0),
        "with_system_instruction": systems,
        "with_generation_config": configs,
        "seed": seed,
    }
