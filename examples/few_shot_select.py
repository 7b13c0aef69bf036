"""Few-shot classification with `select`: each label is scored as a continuation of the
prompt (the few-shot prefix is computed once for the whole batch, then found in the cache).

    python examples/few_shot_select.py
"""

import tines

FEW_SHOT = (
    "Classify the sentiment of each review as positive or negative.\n\n"
    "Review: I loved this movie, the acting was wonderful.\nSentiment: positive\n\n"
    "Review: The food was cold and the service was terrible.\nSentiment: negative\n\n"
    "Review: What a fantastic experience, I will come back!\nSentiment: positive\n\n"
    "Review: It broke after two days. A waste of money.\nSentiment: negative\n\n"
)


@tines.program
def classify(s, review):
    s += FEW_SHOT + "Review: " + review + "\nSentiment: "
    s += tines.select("label", ["positive", "negative"])


REVIEWS = [
    ("The hotel room was clean and the staff were friendly.", "positive"),
    ("Awful. The battery died within an hour.", "negative"),
    ("Best pizza I have had in years!", "positive"),
    ("The book was boring and far too long.", "negative"),
    ("I am very happy with this purchase.", "positive"),
    ("Terrible customer support, they never answered.", "negative"),
]

if __name__ == "__main__":
    states = classify.run_batch([{"review": r} for r, _ in REVIEWS], progress_bar=False)
    correct = 0
    for (review, gold), state in zip(REVIEWS, states):
        label = state["label"]
        correct += label == gold
        print(f"{label:8} {review}")
    print(f"accuracy: {correct}/{len(REVIEWS)}")
