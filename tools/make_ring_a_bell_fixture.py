"""Fixture for Ring-A-Bell's search objective, as the authors' code computes it
(chiayi-hsu/Ring-A-Bell: the concept vector is the mean difference of the text encoder's
last hidden states of prompts with and without the concept; a candidate's fitness is the
squared distance of its encoding, bos + tokens + eos + padding, to the target prompt's
encoding plus eta times that vector), with transformers' CLIPTextModel on the method
fixture's tiny pipeline (Tests/MethodTests/Fixtures/sd-tiny, whose tokenizer knows words).
  tools/.venv-models/bin/python tools/make_ring_a_bell_fixture.py
Writes Tests/EvaluationTests/Fixtures/attack/ring-a-bell.safetensors: the concept vector,
a target's goal, candidate token sequences and their fitness.

  tools/.venv-models/bin/python tools/make_ring_a_bell_fixture.py --notebook PATH
with PATH the authors' InversePrompt.ipynb (chiayi-hsu/Ring-A-Bell at e4585ad; the `fetch`
tool brings it) also writes ring-a-bell-generations.json: three generations of the genetic
search run by the notebook's own `fitness`, `crossover` and `mutation` (its cell is executed
as it is, with `random` and `np.random` recording every draw), from a seeded first
population, with the search loop of its "Find Problematic Prompts" cells: each generation's
scores, the better half kept and the next population, the draws in the order they were
made, and the decoded best, as the notebook writes it. The notebook's `randint(1, 49406)`
(every id of SD 1.4's tokenizer but 0 and bos/eos) is drawn as `randint(1, bos)` in the
tiny tokenizer, and sequences are padded to its 16 tokens, not 77.
"""

import argparse
import json
import os
import random
import re

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

HERE = os.path.dirname(__file__)
TESTS = os.path.join(HERE, "..", "Tests")
PIPELINE = os.path.join(TESTS, "MethodTests", "Fixtures", "sd-tiny")
OUT = os.path.join(TESTS, "EvaluationTests", "Fixtures", "attack")
WITH = ["a red car", "a red house on a field"]
WITHOUT = ["a car", "a house on a field"]
TARGET = "a red apple on a plate"
ETA = 3.0


def main():
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(PIPELINE, "tokenizer"))
    encoder = CLIPTextModel.from_pretrained(os.path.join(PIPELINE, "text_encoder")).eval()

    def encode(prompts):
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids
        return encoder(ids).last_hidden_state

    g = torch.Generator().manual_seed(41)
    with torch.no_grad():
        direction = (encode(WITH) - encode(WITHOUT)).mean(dim=0, keepdim=True)
        goal = encode([TARGET]) + ETA * direction
        length = 5
        words = torch.randint(320, tokenizer.vocab_size - 2, (6, length), generator=g)
        pad = tokenizer.model_max_length - length - 2
        ids = torch.cat([torch.full((6, 1), tokenizer.bos_token_id), words,
                         torch.full((6, 1), tokenizer.eos_token_id),
                         torch.full((6, pad), tokenizer.pad_token_id)], dim=1)
        fitness = ((encoder(ids).last_hidden_state - goal) ** 2).sum(dim=[1, 2])
    save_file({"direction": direction.contiguous(), "goal": goal.contiguous(),
               "sequences": words.float(), "fitness": fitness},
              os.path.join(OUT, "ring-a-bell.safetensors"), metadata={"eta": str(ETA)})
    print("fitness", fitness.tolist())


class Recorder:
    """Stands in for `random` and `np` in the notebook's cell, drawing from seeded
    generators and recording each draw: ("unit", value) or ("int", low, high, value)."""

    def __init__(self, seed, bos):
        self.python = random.Random(seed)
        self.numpy = np.random.RandomState(seed)
        self.bos = bos
        self.draws = []
        self.random = self  # np.random.randint and random.random both land here

    def randint(self, low, high, size):
        if (low, high) == (1, 49406):  # SD 1.4's ids but 0, bos, eos: the tiny one's
            high = self.bos
        values = self.numpy.randint(low, high, size=size)
        for value in np.asarray(values).reshape(-1):
            self.draws.append(["int", int(low), int(high), int(value)])
        return values

    def __call__(self):  # random.random()
        value = self.python.random()
        self.draws.append(["unit", value])
        return value


def notebook_functions(path, namespace):
    """Executes the notebook's cell that defines fitness, crossover and mutation."""
    with open(path) as f:
        cells = json.load(f)["cells"]
    source = next("".join(c["source"]) for c in cells
                  if c["cell_type"] == "code" and "def crossover" in "".join(c["source"]))
    exec(source, namespace)
    return namespace


def generations(notebook, seed=3, population_size=8, length=5, count=3):
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(PIPELINE, "tokenizer"))
    encoder = CLIPTextModel.from_pretrained(os.path.join(PIPELINE, "text_encoder")).eval()

    def encode(prompts):
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids
        return encoder(ids).last_hidden_state

    with torch.no_grad():
        direction = (encode(WITH) - encode(WITHOUT)).mean(dim=0, keepdim=True)
        goal = encode([TARGET]) + ETA * direction
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    recorder = Recorder(seed, bos)
    namespace = notebook_functions(notebook, {
        "torch": torch, "np": recorder, "random": recorder, "text_encoder": encoder,
        "targetEmbed": goal, "device": "cpu", "length": length})
    g = torch.Generator().manual_seed(seed)
    pad = tokenizer.model_max_length - 1 - length
    population = [torch.cat([torch.tensor([[bos]]), torch.randint(1, bos, (1, length), generator=g),
                             torch.full((1, pad), eos)], dim=1) for _ in range(population_size)]
    tokens = lambda members: [m[0, 1:length + 1].tolist() for m in members]
    record = {"seed": seed, "population": population_size, "length": length, "eta": ETA,
              "crossover_rate": 0.5, "mutation_rate": 0.25, "first": tokens(population),
              "generations": []}
    for step in range(count):  # the notebook's search loop
        score = namespace["fitness"](population)
        idx = np.argsort(score)
        check_gaps(score[idx], tokens([population[i] for i in idx]))
        population = [population[i] for i in idx][:population_size // 2]
        generation = {"scores": score.tolist(), "parents": tokens(population)}
        if step != count - 1:
            population = namespace["mutation"](namespace["crossover"](population, 0.5), 0.25)
            generation["next"] = tokens(population)
        record["generations"].append(generation)
    record["draws"] = recorder.draws
    record["best"] = tokenizer.decode(population[0][0][1:length + 1])
    sequences = torch.randint(1, bos, (6, length), generator=g).tolist()
    record["decoded"] = [[ids, tokenizer.decode(ids)] for ids in sequences]
    path = os.path.join(OUT, "ring-a-bell-generations.json")
    text = json.dumps(record, indent=1)  # then each innermost list on one line
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]",
                  text)
    with open(path, "w") as f:
        f.write(text + "\n")
    print(path, len(recorder.draws), "draws; best", repr(record["best"]))


def check_gaps(sorted_scores, sorted_tokens):
    """Ranks that float32 sums of another library could swap make a bad fixture."""
    for a, b, ta, tb in zip(sorted_scores, sorted_scores[1:], sorted_tokens, sorted_tokens[1:]):
        if ta != tb and b - a < 2e-4 * abs(b):
            raise CloseScores(f"scores {a} and {b} are too close to rank reliably")


class CloseScores(Exception):
    pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--notebook", help="Ring-A-Bell's InversePrompt.ipynb")
    args = parser.parse_args()
    main()
    if args.notebook:
        for seed in range(3, 100):  # the first seed whose ranks hold
            try:
                generations(args.notebook, seed=seed)
                break
            except CloseScores as error:
                print(f"seed {seed}: {error}")
