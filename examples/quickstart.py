"""Quickstart: a chat question answered by the default model, a constrained follow-up, and a
choice made by `select`.

    python examples/quickstart.py

With no backend set, tines runs the in-process engine, which pulls (once) and loads the
default model on first use.
"""

import tines


@tines.program
def qa(s, question):
    s += tines.user(question)
    s += tines.assistant(tines.gen("answer", max_tokens=32, stop="\n"))
    s += tines.user("Is that answer correct? Reply yes or no.")
    s += tines.assistant(tines.select("verdict", ["yes", "no"]))


if __name__ == "__main__":
    state = qa.run("What is the capital of France?", temperature=0)
    print("answer: ", state["answer"])
    print("verdict:", state["verdict"])
    meta = state.get_meta_info("verdict")
    print(f"select scores: {dict(zip(meta.choices, (round(x, 3) for x in meta.scores)))}; "
          f"{meta.cached_tokens} of {meta.prompt_tokens} prompt tokens came from the cache")
