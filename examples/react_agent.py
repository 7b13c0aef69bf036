"""A ReAct-style agent: the model picks its next action with `select`, writes the action's
arguments as JSON held to the tool's schema, and reads the tool's observation back.

    python examples/react_agent.py
"""

import json

import tines

TOOLS = {
    "calculator": {"type": "object", "additionalProperties": False, "required": ["expression"],
                   "properties": {"expression": {"type": "string",
                                                 "pattern": r"^[0-9]+ [-+*] [0-9]+$"}}},
    "finish": {"type": "object", "additionalProperties": False, "required": ["answer"],
               "properties": {"answer": {"type": "integer"}}},
}

PROMPT = (
    "Answer questions using tools. Tools: calculator (computes arithmetic), "
    "finish (gives the answer).\n\n"
    "Question: What is 6 times 7?\n"
    "Action: calculator\nInput: {\"expression\": \"6 * 7\"}\nObservation: 42\n"
    "Action: finish\nInput: {\"answer\": 42}\n\n"
    "Question: What is 100 minus 58?\n"
    "Action: calculator\nInput: {\"expression\": \"100 - 58\"}\nObservation: 42\n"
    "Action: finish\nInput: {\"answer\": 42}\n\n"
)


def calculator(expression: str) -> int:
    left, op, right = expression.split()
    a, b = int(left), int(right)
    return {"+": a + b, "-": a - b, "*": a * b}[op]


@tines.program
def agent(s, question, max_steps=4):
    s += PROMPT + "Question: " + question + "\n"
    for _ in range(max_steps):
        s += "Action: " + tines.select("action", list(TOOLS)) + "\nInput: "
        s += tines.gen("input", json_schema=TOOLS[s["action"]], max_tokens=24)
        args = json.loads(s["input"])
        if s["action"] == "finish":
            return args["answer"]
        s += "\nObservation: " + str(calculator(**args)) + "\n"
    return None


if __name__ == "__main__":
    for question in ["What is 37 times 23?", "What is 512 plus 389?"]:
        state = agent.run(question, temperature=0)
        print(state.text()[len(PROMPT):].strip())
        print(f"=> answer: {state.ret_value}\n")
