"""Deterministic synthetic text: names, places and sentences drawn from a seeded RNG.

Every workload builds its inputs from these lists with `random.Random(seed)`, so a run is
reproducible and needs no download. The text only has to be shaped like the real task
(lengths, structure, shared parts), not to be true.
"""

from __future__ import annotations

import random

FIRST_NAMES = ["Maria", "Jonas", "Aiko", "Samir", "Elena", "Tomas", "Priya", "Kwame", "Lucia",
               "Oskar", "Mei", "Rafael", "Ingrid", "Dmitri", "Amara", "Felix", "Nadia", "Hugo",
               "Leila", "Viktor", "Sofia", "Arjun", "Greta", "Mateo"]
LAST_NAMES = ["Okafor", "Lindqvist", "Tanaka", "Haddad", "Novak", "Silva", "Raman", "Mensah",
              "Moreau", "Berg", "Chen", "Costa", "Larsen", "Petrov", "Diallo", "Weber", "Kovacs",
              "Dubois", "Rahimi", "Horvat", "Rossi", "Iyer", "Fischer", "Ortega"]
CITIES = [("Lisbon", "Portugal"), ("Oslo", "Norway"), ("Osaka", "Japan"), ("Beirut", "Lebanon"),
          ("Prague", "Czechia"), ("Recife", "Brazil"), ("Chennai", "India"), ("Accra", "Ghana"),
          ("Lyon", "France"), ("Bergen", "Norway"), ("Taipei", "Taiwan"), ("Porto", "Portugal"),
          ("Aarhus", "Denmark"), ("Kazan", "Russia"), ("Dakar", "Senegal"), ("Munich", "Germany")]
SUBJECTS = ["astronomy", "biology", "economics", "geography", "chemistry", "history",
            "physics", "medicine", "law", "philosophy"]
NOUNS = ["river", "committee", "laboratory", "harbor", "library", "engine", "forest", "council",
         "bridge", "market", "garden", "museum", "railway", "glacier", "festival", "orchard",
         "observatory", "workshop", "vineyard", "archive"]
ADJECTIVES = ["ancient", "northern", "quiet", "crowded", "experimental", "narrow", "famous",
              "remote", "wooden", "modern", "seasonal", "hidden", "coastal", "industrial"]
VERBS = ["studied", "rebuilt", "measured", "described", "visited", "funded", "mapped",
         "restored", "compared", "recorded", "expanded", "inspected"]
SKILLS = ["python", "negotiation", "statistics", "welding", "design", "accounting", "spanish",
          "logistics", "research", "sales", "writing", "robotics"]


def name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def sentence(rng: random.Random) -> str:
    """One plain declarative sentence of ~12-18 words."""
    a, b = rng.choice(ADJECTIVES), rng.choice(ADJECTIVES)
    n1, n2 = rng.choice(NOUNS), rng.choice(NOUNS)
    city, _ = rng.choice(CITIES)
    year = rng.randint(1820, 2020)
    forms = [
        f"In {year}, the {a} {n1} near {city} was {rng.choice(VERBS)} by {name(rng)} and a small team.",
        f"Records show that the {n1} of {city} was {rng.choice(VERBS)} twice before {year}.",
        f"{name(rng)} {rng.choice(VERBS)} the {a} {n1} while working beside the {b} {n2}.",
        f"Most visitors to {city} remember the {a} {n1} more than the {b} {n2}.",
        f"By {year} the {n1} had become the {a} center of life in {city}.",
    ]
    return rng.choice(forms)


def paragraph(rng: random.Random, num_sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(num_sentences))
