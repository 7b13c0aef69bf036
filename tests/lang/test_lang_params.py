from __future__ import annotations

import pytest

from tines.params import ALIASES, dtype_spec, normalize, resolve


def test_normalize_maps_sglang_spellings_and_drops_none():
    assert normalize({"max_tokens": 5, "top_logprobs_num": 2, "seed": None}, "t") == \
        {"max_new_tokens": 5, "top_logprobs": 2}


def test_every_alias_names_a_sampling_params_field():
    from dataclasses import fields

    from tines.runtime.sampling_params import SamplingParams
    names = {f.name for f in fields(SamplingParams)}
    assert set(ALIASES.values()) <= names


def test_resolve_layers_gen_over_run_over_defaults():
    params = resolve({"temperature": 0.5, "max_new_tokens": 9}, {"max_new_tokens": 3})
    assert (params.temperature, params.max_new_tokens, params.top_p) == (0.5, 3, 1.0)


def test_resolve_names_the_bad_field():
    with pytest.raises(ValueError, match="min_new_tokens"):
        resolve({"max_new_tokens": 2}, {"min_new_tokens": 5})


@pytest.mark.parametrize("dtype, sample, bad", [
    (int, "-42", "4.2"), (float, "3.25", "1e"), (bool, "True", "yes"), (str, '"a b"', "a b"),
])
def test_dtype_regexes_accept_values_and_refuse_others(dtype, sample, bad):
    import re
    _, regex = dtype_spec(dtype)
    assert re.fullmatch(regex, sample) and not re.fullmatch(regex, bad)
