"""Fixture for Ring-A-Bell's search objective, as the authors' code computes it
(chiayi-hsu/Ring-A-Bell: the concept vector is the mean difference of the text encoder's
last hidden states of prompts with and without the concept; a candidate's fitness is the
squared distance of its encoding, bos + tokens + eos + padding, to the target prompt's
encoding plus eta times that vector), with transformers' CLIPTextModel on the method
fixture's tiny pipeline (Tests/MethodTests/Fixtures/sd-tiny, whose tokenizer knows words).
  tools/.venv-models/bin/python tools/make_ring_a_bell_fixture.py
Writes Tests/EvaluationTests/Fixtures/attack/ring-a-bell.safetensors: the concept vector,
a target's goal, candidate token sequences and their fitness.
"""

import os

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


if __name__ == "__main__":
    main()
