"""JSON extraction into a pydantic model: decoding is held to the model's JSON schema, so
every answer parses and validates.

    python examples/json_extraction.py
"""

from pydantic import BaseModel

import tines


class Person(BaseModel):
    name: str
    age: int
    city: str


@tines.program
def extract(s, text):
    s += tines.user("Extract the person as JSON: " + text)
    s += tines.assistant(tines.gen("person", json_schema=Person, max_tokens=48))


TEXTS = [
    "Alice is 30 years old and lives in Paris.",
    "Bob is 41 years old and lives in Rome.",
    "Carla lives in Madrid. She is 27 years old.",
]

if __name__ == "__main__":
    states = extract.run_batch([{"text": t} for t in TEXTS], temperature=0, progress_bar=False)
    for text, state in zip(TEXTS, states):
        person: Person = state["person"]
        print(f"{text}\n  -> {person!r}")
