"""instructor (unmodified) over the openai client against a live tines server: TOOLS and
JSON_SCHEMA modes, whole and partial streaming."""

from __future__ import annotations

import pytest

from tests.clients.models import Person

instructor = pytest.importorskip("instructor")
ASK = [{"role": "user", "content": "Invent a person."}]
MODES = [instructor.Mode.TOOLS, instructor.Mode.TOOLS_STRICT, instructor.Mode.JSON_SCHEMA,
         instructor.Mode.RESPONSES_TOOLS]


@pytest.fixture(scope="module")
def openai_client(clients_server):
    return clients_server.openai()


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_create_returns_a_valid_model(openai_client, model_name, mode):
    client = instructor.from_openai(openai_client, mode=mode)
    person = client.chat.completions.create(model=model_name, messages=ASK, response_model=Person,
                                            max_tokens=64, temperature=0, max_retries=0)
    assert isinstance(person, Person) and 0 <= person.age <= 120 and len(person.name) <= 10


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_partial_streaming_grows_to_a_whole_model(openai_client, model_name, mode):
    client = instructor.from_openai(openai_client, mode=mode)
    partials = list(client.chat.completions.create_partial(
        model=model_name, messages=ASK, response_model=Person, max_tokens=64, temperature=0,
        max_retries=0))
    assert len(partials) > 2  # arrived in pieces, not in one delta at the end
    final = Person.model_validate(partials[-1].model_dump())
    names = [p.name for p in partials if p.name is not None]
    assert names and all(final.name.startswith(n) for n in names)
