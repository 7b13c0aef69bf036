"""Tree of thought with `fork`: propose several thoughts in parallel branches (they share the
prompt's KV in the radix cache), let the model rate each with `select`, expand the best one.

    python examples/tree_of_thought.py
"""

import tines


@tines.program
def propose(s, topic, so_far, width):
    s += "Here are short, practical tips for " + topic + ".\n" + so_far + "-"
    forks = s.fork(width)
    forks += lambda i: tines.gen("thought", max_tokens=16, stop="\n", temperature=0.9, seed=i)
    forks += "\nRating of this tip (good or bad): " + tines.select("rating", ["good", "bad"])
    forks.join()  # gathers every branch's variables into lists


def best(state):
    """The thought whose "good" score is highest."""
    scores = [meta.scores[0] for meta in state.get_meta_info("rating")]
    i = max(range(len(scores)), key=scores.__getitem__)
    return state["thought"][i].strip(), scores


if __name__ == "__main__":
    topic, path = "better sleep", "- Keep a regular schedule.\n"
    for depth in range(2):
        state = propose.run(topic, path, 3, temperature=0)
        for thought, rating in zip(state["thought"], state["rating"]):
            print(f"{'  ' * depth}[{rating:4}] {thought.strip()}")
        chosen, _ = best(state)
        print(f"{'  ' * depth}=> expanding: {chosen}")
        path += "- " + chosen + "\n"
    print("plan:\n" + path, end="")
