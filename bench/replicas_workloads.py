"""The workloads bench/replicas.py adds to bench.workloads' for its routing comparison.

- `document_chat`: four questions per conversation about its own document (no shared prefix
  but the conversation's history).
- `mmlu_subjects`: few-shot mmlu over S subjects, each with its own 5-shot prefix (real MMLU
  has 57, each with its own dev-set shots), questions of all subjects in a random order.
- `chat_sessions`: bench.workloads.multi_turn_chat with N conversations open at once and K
  requests in flight, so the turns of open conversations interleave.

Each has bench.workloads' shape: NAME, make_inputs(n), run_tines(backend, inputs), check(output).
"""

from __future__ import annotations

import random
from typing import Any


class DocumentChat:
    """Four questions about one document per conversation; the document is the conversation's
    own (not shared), the whole history is sent each turn."""

    NAME, TURNS, MAX_TOKENS = "document_chat", 4, 16

    @staticmethod
    def make_inputs(n: int, seed: int = 0) -> list[dict[str, Any]]:
        import random

        from bench.workloads.synth import sentence

        rng = random.Random(f"document_chat-{seed}")
        return [{"document": " ".join(sentence(rng) for _ in range(12)),
                 "questions": ["Who is this about?", "Where does it happen?",
                               "What is the most surprising detail?", "Sum it up in one line."]}
                for _ in range(n)]

    @staticmethod
    def run_tines(backend: Any, inputs: list[dict[str, Any]]) -> list[Any]:
        import tines
        from bench.workloads.common import GREEDY, answers

        @tines.program
        def chat(s, document, questions):
            s += tines.system("Answer questions about this document in one short sentence.\n\n"
                              + document)
            for i, q in enumerate(questions):
                s += tines.user(q)
                s += tines.assistant(tines.gen(f"a{i}", max_tokens=DocumentChat.MAX_TOKENS))

        states = chat.run_batch(inputs, backend=backend, progress_bar=False, **GREEDY)
        return answers(states, lambda s: [s[f"a{i}"] for i in range(DocumentChat.TURNS)])

    @staticmethod
    def check(output: Any) -> bool:
        return isinstance(output, list) and len(output) == DocumentChat.TURNS


class MmluSubjects:
    """Few-shot mmlu over `num_subjects` subjects: each subject's questions follow its own
    5-shot prefix (~1,000 tokens), and the questions of all subjects come in a random order,
    as many evaluations of a multi-subject benchmark share a server."""

    NAME = "mmlu_subjects"

    def __init__(self, num_subjects: int, concurrency: int | str = "auto"):
        from bench.workloads.synth import SUBJECTS

        if not 1 <= num_subjects <= len(SUBJECTS):
            raise ValueError(f"num_subjects must be in 1..{len(SUBJECTS)}, got {num_subjects}")
        self.shots = [self.few_shot(subject) for subject in SUBJECTS[:num_subjects]]
        self.concurrency = concurrency

    @staticmethod
    def few_shot(subject: str) -> str:
        """bench.workloads.mmlu's 5-shot prefix, for a given subject (seeded by its name)."""
        from bench.workloads.mmlu import _question

        rng = random.Random(f"mmlu_subjects-{subject}")
        shots = [f"The following are multiple choice questions (with answers) about {subject}.\n\n"]
        for _ in range(5):
            block, letter = _question(rng)
            shots.append(f"{block}Answer: {letter}\n\n")
        return "".join(shots)

    def make_inputs(self, n: int, seed: int = 0) -> list[dict[str, Any]]:
        """n questions, as even over the subjects as n allows, shuffled."""
        from bench.workloads.mmlu import _question

        rng = random.Random(f"mmlu_subjects-{seed}")
        subjects = [i % len(self.shots) for i in range(n)]
        rng.shuffle(subjects)
        return [{"shots": self.shots[i], "question": _question(rng)[0]} for i in subjects]

    def run_tines(self, backend: Any, inputs: list[dict[str, Any]]) -> list[Any]:
        import tines
        from bench.workloads.common import GREEDY, answers
        from bench.workloads.mmlu import CHOICES

        @tines.program
        def subject_question(s, shots, question):
            s += shots
            s += question + "Answer:"
            s += tines.select("answer", CHOICES)

        states = subject_question.run_batch(inputs, backend=backend, progress_bar=False,
                                            num_threads=self.concurrency, **GREEDY)
        return answers(states, lambda s: s["answer"].strip())

    @staticmethod
    def check(output: Any) -> bool:
        from bench.workloads.mmlu import check

        return check(output)


class ChatSessions:
    """bench.workloads.multi_turn_chat with `open_conversations` conversations open at once and
    `max_in_flight` requests in flight: the turns of open conversations interleave (each waits
    for the others' turns, as users think between turns), so each history must stay cached
    while ~open_conversations other turns are served."""

    NAME = "chat_sessions"

    def __init__(self, open_conversations: int, max_in_flight: int):
        if open_conversations < 1 or max_in_flight < 1:
            raise ValueError("open_conversations and max_in_flight must be positive")
        self.open_conversations = open_conversations
        self.max_in_flight = max_in_flight  # read by bench/replicas.py (its TokenTally caps it)

    @staticmethod
    def make_inputs(n: int, seed: int = 0) -> list[dict[str, Any]]:
        from bench.workloads.multi_turn_chat import make_inputs

        return make_inputs(n, seed)

    def run_tines(self, backend: Any, inputs: list[dict[str, Any]]) -> list[Any]:
        from bench.workloads.common import GREEDY, answers
        from bench.workloads.multi_turn_chat import TURNS, conversation

        states = conversation.run_batch(inputs, backend=backend, progress_bar=False,
                                        num_threads=self.open_conversations, **GREEDY)
        return answers(states, lambda s: [s[f"reply{i}"] for i in range(TURNS)])

    @staticmethod
    def check(output: Any) -> bool:
        from bench.workloads.multi_turn_chat import check

        return check(output)
