"""The vocabulary every stage of mibe speaks: plain frozen dataclasses and the Backend interface."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

PARSERS = ("strict", "paper", "model")  # model: --extractor reads choice/letter/multi-label answers
SCORINGS = ("generate", "loglikelihood")
PROTOCOLS = ("mibe", "paper", "paper-fewshot")
# The paper's scripts' settings; paper-fewshot adds the shots (--num-fewshot K, the source rule of
# mibe/runner/fewshot.py). Every rule that says "under the paper's protocol" reads is_paper.
PAPER_PROTOCOLS = ("paper", "paper-fewshot")


def is_paper(protocol: str) -> bool:
    return protocol in PAPER_PROTOCOLS


# A task's name: also a file name in every run folder (samples/<name>.jsonl), so never a path.
TASK_NAME = r"[a-z0-9_]{1,64}"

Gold = str | tuple[str, ...]


# Resume identity, declared once on RunConfig's fields: a field marked VOLATILE changes no number, so
# it may differ between a run and its resume and stays out of run.json's `config`; every other field
# is part of the run's identity (docs/run-folder.md, Resume).
VOLATILE = {"resume": False}
# A field added after run folders existed: part of the identity only when set (not its default), so a
# folder written before the field existed still resumes.
WHEN_SET = {"resume": "when set"}
# Keys of a model's description (results.json `model`) that may differ on resume: the URL an endpoint
# is reached at (several URLs may serve one model; what it serves is identified by `served`).
VOLATILE_MODEL_KEYS = ("endpoint", "endpoints", "device_map")  # endpoints: an endpoint pool's servers


class MibeError(Exception):
    """Bad input from the user: shown as one line on stderr, exit code 2."""


@dataclass(frozen=True)
class Task:
    name: str
    path: Path  # the task file; relative data paths resolve against its folder
    description: str
    source: str  # hub id, or a local file/folder (already resolved against the task file's folder)
    split: str
    fewshot_split: str | None
    revision: str | None
    credentialed: bool
    access: str  # where the data comes from and how to point mibe at it
    template: str  # Jinja source text
    template_name: str  # prompts/<name>.jinja, a file path, or "inline"
    target: str  # the gold column for rows read without a hook
    answer_type: str
    choices: tuple[str, ...]
    truncate: str  # the document field shortened when a prompt exceeds the context
    max_new_tokens: int
    stop: tuple[str, ...]
    metrics: tuple[str, ...]
    version: int
    hook: Path | None  # same-stem .py beside the task file
    file_hash: str
    template_hash: str
    paper_match: str = "first"  # the paper's label rule: first in list order, or exactly one (DDI)
    domain: str = "medical"  # or "general": the forgetting view averages the two apart
    cluster: str | None = None  # the field grouping documents made together (docs/statistics.md)
    # False for a task file a run folder named: its hook is never imported (a run folder is data).
    trusted: bool = True
    config: str | None = None  # dataset.config: the hub dataset's configuration (e.g. cais/mmlu's "all")
    judge: Any = None  # the task file's `judge:` rubric (mibe.scoring.judge_scoring.Rubric), if it has one
    match_fields: tuple[str, ...] = ()  # the contamination matcher's fields (mibe/matcher.py); () = defaults


@dataclass(frozen=True)
class Doc:
    id: str
    fields: Mapping[str, Any]  # the template's variables
    gold: Gold  # a label / letter / text; a tuple of label names for multi_label
    query: str | None = None  # Me-LLaMA's published rows: the rendered prompt, used verbatim
    invented: bool = False  # bundled demo documents and fixtures standing in for real data
    # The group the document was made in (a note, a premise), when its task names one: resampled
    # whole by every interval. Not part of the documents' fingerprint: it changes no score.
    cluster: str | None = None


@dataclass(frozen=True)
class Request:
    doc_id: str
    prompt: str
    max_new_tokens: int = 0
    stop: tuple[str, ...] = ()
    continuations: tuple[str, ...] = ()  # log-likelihood scoring: one per choice
    # Reasoning-trace delimiters (open, close): stop strings then apply only after a closed trace.
    reasoning: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Prediction:
    # None: no answer (output that names no label, or two different ones), always scored wrong. It is
    # out of band on purpose: a model may write the word "missing", and for text kinds that is text.
    value: Gold | None
    failed: bool  # the parser found no usable answer


@dataclass(frozen=True)
class RunConfig:
    model: str
    adapter: str | None = None
    adapters: str | None = field(default=None, metadata=WHEN_SET)  # --adapters D: each task through D/<task>/
    backend: str = "hf"
    tasks: tuple[str, ...] = ("all",)
    data_dir: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    output_dir: str | None = field(default=None, metadata=VOLATILE)
    overwrite: bool = field(default=False, metadata=VOLATILE)
    limit: int | None = None
    num_fewshot: int = 0
    seed: int = 1234
    scoring: str = "generate"
    parser: str | None = None  # None: the protocol's parser
    protocol: str = "mibe"
    max_new_tokens: int | None = None
    chat_template: str | None = None  # auto | none | a Jinja file; None: the protocol's default
    system_prompt: str | None = None
    batch_size: int = field(default=8, metadata=VOLATILE)
    dtype: str = "auto"
    # --quantize 4bit|8bit (HF, bitsandbytes): a fact of the model, like dtype
    quantize: str | None = field(default=None, metadata=WHEN_SET)
    device_map: str | None = field(default=None, metadata=VOLATILE)  # --device-map auto: over several GPUs
    device: str = "auto"  # CUDA, else MPS, else CPU: resolved (and recorded) when the run starts
    bertscore_model: str = "bert-base-multilingual-cased"
    trust_remote_code: bool = False
    demo: bool = False
    redact_samples: bool = field(default=False, metadata=VOLATILE)
    dry_run: bool = field(default=False, metadata=VOLATILE)
    bootstrap: int = 1000
    # --backend vllm (docs/backends.md)
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None  # vllm: the engine's context; openai: the served model's
    # --backend openai
    # counts and truncates prompts where the served model's is not at hand
    tokenizer: str | None = field(default=None, metadata=WHEN_SET)
    # --dry-run --price IN,OUT: dollars per million prompt and answer tokens (a plan, not a number)
    price: tuple[float, float] | None = field(default=None, metadata=VOLATILE)
    base_url: str | None = field(default=None, metadata=VOLATILE)  # several URLs may serve one model
    # an endpoint pool: every server (base_url is the first; mibe/backends/pool.py)
    base_urls: tuple[str, ...] = field(default=(), metadata=VOLATILE)
    # the variable holding the key (default OPENAI_API_KEY, if set)
    api_key_env: str | None = field(default=None, metadata=VOLATILE)
    max_concurrency: int = field(default=8, metadata=VOLATILE)
    # --allow-remote-credentialed: URL=REASON per remote endpoint, a bare REASON for --base-url only
    # (mibe.backends.policy); a str is one value. Who may receive text, not what it answers: volatile
    # (results.json's endpoints record it)
    allow_remote_credentialed: tuple[str, ...] | str = field(default=(), metadata=VOLATILE)
    # --fewshot-seeds: score each task once per shot draw (mibe/runner/shot_draws.py)
    fewshot_seeds: tuple[int, ...] = field(default=(), metadata=WHEN_SET)
    # --choice-permutations K: letter tasks under K orderings of their options (mibe/runner/permutations.py)
    choice_permutations: int = field(default=1, metadata=WHEN_SET)
    # seconds without a byte from the endpoint before a request is retried
    request_timeout: float = field(default=120.0, metadata=VOLATILE)
    # --judge (docs/judges.md): judge models scoring the text tasks' outputs once the run is scored
    # judges are recorded per task (protocol.jury): adding one to a finished run resumes it
    judge: tuple[str, ...] = field(
        default=(), metadata=VOLATILE
    )  # specs: hf:PATH, vllm:PATH, openai:URL#NAME
    judge_order: str = field(default="reference_first", metadata=VOLATILE)
    # chat templates and reasoning models (docs/chat-and-reasoning.md)
    chat_template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    reasoning_delimiters: tuple[tuple[str, str], ...] = (("<think>", "</think>"),)
    reasoning_budget: int = 0  # thinking tokens allowed on top of the answer's max_new_tokens
    extractor: str | None = None  # --parser model: the model spec that reads the answers
    # --shard I/N: this job scores shard I of N (mibe/runfolder/sharding.py)
    shard: str | None = field(default=None, metadata=WHEN_SET)
    # --dry-run --shards N [--throughput TOKENS_PER_S]: the planning table per shard (no run folder)
    plan_shards: int | None = field(default=None, metadata=VOLATILE)
    throughput: float | None = field(default=None, metadata=VOLATILE)
    # --dry-run --measure-throughput DOCS: the one dry run that loads the model and times DOCS documents
    measure_throughput: int | None = field(default=None, metadata=VOLATILE)

    @classmethod
    def volatile(cls) -> frozenset[str]:
        """The fields left out of the run's identity (VOLATILE)."""
        return frozenset(f.name for f in fields(cls) if f.metadata.get("resume") is False)

    def unset_new_fields(self) -> frozenset[str]:
        """The WHEN_SET fields at their default: left out of the identity, as before they existed."""
        return frozenset(
            f.name for f in fields(self) if f.metadata == WHEN_SET and getattr(self, f.name) == f.default
        )

    @property
    def resolved_parser(self) -> str:
        if self.parser:
            return self.parser
        return "paper" if is_paper(self.protocol) else "strict"


F = TypeVar("F")


def takes_settings(func: F) -> F:
    """Give mibe.evaluate the signature of its keyword arguments: RunConfig's fields, typed and with
    their defaults, after its own (help() and editors show them; the fields stay declared once)."""
    own = [p for p in inspect.signature(func).parameters.values() if p.kind != p.VAR_KEYWORD]  # type: ignore[arg-type]
    taken = {p.name for p in own} | {"model", "tasks"}
    settings = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=f.type,
            default=f.default_factory() if f.default_factory is not MISSING else f.default,
        )
        for f in fields(RunConfig)
        if f.name not in taken
    ]
    func.__signature__ = inspect.Signature([*own, *settings])  # type: ignore[attr-defined]
    return func


class Backend(ABC):
    """What mibe needs from a model: every capability a caller uses is declared here, the required
    ones abstract, the optional ones with the default a backend that lacks them has (so no caller
    probes a backend with getattr). mibe.backends.base.TokenizedBackend adds the shared tokenizer and
    chat layer of the HF, vLLM and endpoint backends."""

    max_context: int | None = None  # tokens the model attends to; None when unknown (endpoints)
    # The model's tokenizer (transformers-like: decode, chat_template, bos_token_id) where one is at
    # hand; None for a backend without one.
    tokenizer: Any = None
    # Whether `tokenizer` is the served model's own: False for an endpoint that counts with UTF-8 bytes
    # or with a --tokenizer (its chat template then cannot be seen from here).
    local_tokenizer: bool = True
    # Requests per call for engines that schedule their own batches (vLLM, endpoints); None: the
    # runner's --batch-size batches.
    chunk_size: int | None = None
    # Backends that report progress inside a batch (HF) say so; the runner then sets `on_step`, called
    # with the tokens of each generation step or forward.
    reports_steps: ClassVar[bool] = False
    on_step: Callable[[int], None] | None = None
    kv_cache_bytes: int | None = None  # the KV cache mibe sized (vLLM on a CPU): recorded in results.json

    @abstractmethod
    def generate(self, requests: Sequence[Request]) -> list[str]: ...

    @abstractmethod
    def loglikelihood(self, requests: Sequence[Request]) -> list[list[float]]: ...

    @abstractmethod
    def describe(self) -> dict[str, Any]: ...

    @abstractmethod
    def tokenize(self, text: str) -> list[int]: ...

    @abstractmethod
    def detokenize(self, ids: Sequence[int]) -> str: ...

    @abstractmethod
    def chat(
        self,
        prompt: str,
        system_prompt: str | None,
        template: str | None = None,  # the Jinja text; None: the tokenizer's (or the server's) own
        kwargs: Mapping[str, Any] | None = None,  # --chat-template-kwargs
    ) -> str: ...

    def with_adapter(self, adapter: str | None) -> Backend:
        """The same loaded model answering through a LoRA adapter (`mibe run --adapters`). Default:
        no switching (the run refuses --adapters for such backends before loading)."""
        if adapter is None:
            return self
        kind = self.describe().get("backend")
        raise MibeError(f"--adapters: the {kind} backend cannot switch LoRA adapters; use hf or vllm")

    def tokenize_many(self, texts: Sequence[str], continuations: Sequence[str] = ()) -> None:
        """Tokenise a task's prompts (and their choices) ahead, in batched calls, before the first
        forward. Default: nothing; `tokenize` then works on demand."""
        return None

    def served_tokens(self, doc_id: str) -> int | None:
        """The new tokens the model itself says it wrote for a document (an endpoint's usage); None:
        the runner counts them by re-tokenising the output."""
        return None

    def answered_by(self, doc_id: str) -> str | None:
        """Which server answered a document (an endpoint pool: its samples row's `endpoint`); None."""
        return None

    @property
    def answered_as(self) -> set[str]:
        """The model names replies carried (an endpoint's `model` field); empty where replies name none."""
        return set()

    def sampling_record(self) -> dict[str, Any] | None:
        """results.json's model.sampling: the sampling parameters sent and any the server refused
        (endpoints); None where mibe sends none."""
        return None

    @property
    def chat_template(self) -> str | None:
        """The tokenizer's own chat template; None without a tokenizer or a template."""
        return self.tokenizer.chat_template if self.tokenizer is not None else None

    @property
    def bos_token_id(self) -> int | None:
        """The id of the tokenizer's beginning-of-sequence token; None without one."""
        return self.tokenizer.bos_token_id if self.tokenizer is not None else None
