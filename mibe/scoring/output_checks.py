"""Outputs that look broken: most of a task's generations empty, all the same, or cut at the token limit.

A run with such outputs still scores (often near zero), and nothing else says why. These checks turn
the pattern into a one-line warning with its likely cause, kept in results.json
(`tasks.<task>.warnings`) and printed under the summary table. Pure: they read the outputs and the
settings that produced them, nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from mibe.types import is_paper

SHARE = 0.8  # the share of outputs that makes a pattern a warning
MIN_FOR_IDENTICAL = 3  # one or two documents agreeing says nothing


def _tail(prompt: str) -> str:
    return prompt[-24:]


def _empty_causes(prompt: str, stop: Sequence[str], chat_template: bool) -> str:
    causes = [
        f"the prompt ends with {_tail(prompt)!r}, which the model may read as finished "
        "(end the template on a cue like 'Answer:')"
    ]
    if stop:
        causes.append(f"a stop string ({', '.join(repr(s) for s in stop)}) may match at the answer's start")
    if not chat_template:  # one applied already (perhaps by auto): suggesting it again would mislead
        causes.append("an instruction-tuned model may answer only inside its chat template (--chat-template)")
    return "; or ".join(causes)


def _cut_causes(stop: Sequence[str], chat_template: bool, protocol: str) -> str:
    if stop:
        first = f"the stop strings ({', '.join(repr(s) for s in stop)}) never matched"
    elif is_paper(protocol):  # the task file's stop strings are not in force: the paper used none
        first = "--protocol paper uses no stop string, as the paper did (--protocol mibe: the task file's)"
    else:
        first = "no stop string ends the answer (add generation.stop to the task file, e.g. ['\\n\\n'])"
    causes = [first]
    if chat_template:
        causes.append("the model keeps writing past its answer even inside the chat template applied")
    else:
        causes.append("a base model keeps writing past its answer (try --chat-template with a chat model)")
    causes.append("answers longer than the limit (raise --max-new-tokens)")
    return "; or ".join(causes)


def check(
    outputs: Sequence[str],
    cut_at_limit: Sequence[bool],
    prompt: str,
    stop: Sequence[str],
    chat_template: bool,
    max_new_tokens: int | None,
    protocol: str = "mibe",
) -> list[str]:
    """One-line warnings for a task's generated outputs; `prompt` is one of its prompts (its end
    is what the model continued), `cut_at_limit[i]` whether output i used every allowed new token,
    `chat_template` whether a template was applied (not whether the flag was given)."""
    n = len(outputs)
    if n == 0:
        return []
    found = []
    empty = sum(1 for o in outputs if not o.strip())
    if empty >= SHARE * n:
        found.append(
            f"{empty} of {n} outputs are empty; likely cause: {_empty_causes(prompt, stop, chat_template)}"
        )
    else:
        text, same = Counter(o.strip() for o in outputs).most_common(1)[0]
        if n >= MIN_FOR_IDENTICAL and same >= SHARE * n:
            found.append(
                f"{same} of {n} outputs are the same text ({text[:40]!r}); likely cause: the prompt does not "
                "show the document (check its fields with `mibe tasks show`), or the model ignores it "
                "(small models often give every document the same answer)"
            )
    cut = sum(1 for c in cut_at_limit if c)
    if cut >= SHARE * n:
        found.append(
            f"{cut} of {n} outputs were cut at the {max_new_tokens}-token limit; likely cause: "
            + _cut_causes(stop, chat_template, protocol)
        )
    return found
