"""Fixture for Concept Inversion's training: textual inversion's update as diffusers'
examples/textual_inversion/textual_inversion.py (at 58eb52c; Pham et al.'s
concept_inversion.py is a copy of it) runs it under accelerate, on the method fixture's tiny
pipeline (Tests/MethodTests/Fixtures/sd-tiny, a real small BPE tokenizer), with every random
draw fixed here so that duo can be fed the same ones:
- the placeholder added to the tokenizer, the embedding table resized and the new row set
  to the initializer word's (l.676-699), every parameter frozen but the table (l.701-711);
- AdamW over the whole table at lr x accumulation x batch (--scale_lr, l.735-747),
  constant schedule;
- a DataLoader over the images in a fixed order (shuffle's draw), each example captioned
  by its drawn object template and flipped where drawn (the dataset's __getitem__,
  l.547-590), in micro-batches of 2;
- per micro-batch, inside accelerator.accumulate with 2 steps: latent_dist's mean + std x
  the drawn normal (what .sample() computes), x scaling factor; the drawn noise and
  timesteps; DDPMScheduler.add_noise; the UNet's epsilon; MSE; accelerator.backward;
  optimizer.step / zero_grad (acting only when accelerate syncs); every row but the
  placeholder's restored (l.870-917); the placeholder row's gradient norm at each step.
Five images and two per micro-batch make an epoch of 2 + 2 + 1: the first step accumulates
two micro-batches, the second is the epoch's last, a lone micro-batch of one image (accelerate
syncs at the end of its dataloader).
  tools/.venv-models/bin/python tools/make_inversion_fixture.py
Writes Tests/EvaluationTests/Fixtures/attack/inversion.safetensors.
"""

import os

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.optimization import get_scheduler
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

HERE = os.path.dirname(__file__)
TESTS = os.path.join(HERE, "..", "Tests")
PIPELINE = os.path.join(TESTS, "MethodTests", "Fixtures", "sd-tiny")
OUT = os.path.join(TESTS, "EvaluationTests", "Fixtures", "attack")
PLACEHOLDER, INITIALIZER = "<tiny-concept>", "car"
TEMPLATES = [  # diffusers' imagenet_templates_small, its first four
    "a photo of a {}", "a rendering of a {}", "a cropped photo of the {}", "the photo of a {}"]
IMAGES, BATCH, ACCUMULATION, LR = 5, 2, 2, 5e-3


class Examples(torch.utils.data.Dataset):
    """The images in the drawn order, each with its drawn template and flip, as the
    script's dataset yields them (pixel values in [-1, 1], input ids padded)."""

    def __init__(self, images, order, templates, flips, tokenizer):
        self.items = []
        for k, index in enumerate(order):
            image = images[index].flip(-1) if flips[k] else images[index]
            text = TEMPLATES[templates[k]].format(PLACEHOLDER)
            ids = tokenizer(text, padding="max_length", truncation=True,
                            max_length=tokenizer.model_max_length, return_tensors="pt").input_ids[0]
            self.items.append({"pixel_values": image, "input_ids": ids})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def main():
    g = torch.Generator().manual_seed(23)
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(PIPELINE, "tokenizer"))
    text_encoder = CLIPTextModel.from_pretrained(os.path.join(PIPELINE, "text_encoder"))
    vae = AutoencoderKL.from_pretrained(os.path.join(PIPELINE, "vae"))
    unet = UNet2DConditionModel.from_pretrained(os.path.join(PIPELINE, "unet"))
    noise_scheduler = DDPMScheduler.from_pretrained(os.path.join(PIPELINE, "scheduler"))

    assert tokenizer.add_tokens([PLACEHOLDER]) == 1
    (initializer_id,) = tokenizer.encode(INITIALIZER, add_special_tokens=False)
    (placeholder_id,) = tokenizer.convert_tokens_to_ids([PLACEHOLDER])
    text_encoder.resize_token_embeddings(len(tokenizer))
    table = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        table.data[placeholder_id] = table.data[initializer_id].clone()
    vae.requires_grad_(False)
    unet.requires_grad_(False)
    text_module = getattr(text_encoder, "text_model", text_encoder)  # as l.702
    text_module.encoder.requires_grad_(False)
    text_module.final_layer_norm.requires_grad_(False)
    text_module.embeddings.position_embedding.requires_grad_(False)

    accelerator = Accelerator(gradient_accumulation_steps=ACCUMULATION)
    lr = LR * ACCUMULATION * BATCH * accelerator.num_processes
    optimizer = torch.optim.AdamW(text_encoder.get_input_embeddings().parameters(), lr=lr,
                                  betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    lr_scheduler = get_scheduler("constant", optimizer=optimizer)

    size = vae.config.sample_size
    pixels = torch.randint(0, 256, (IMAGES, 3, size, size), generator=g).float() / 127.5 - 1
    order = torch.randperm(IMAGES, generator=g)
    templates = torch.randint(0, len(TEMPLATES), (IMAGES,), generator=g)
    flips = torch.rand(IMAGES, generator=g) < 0.5
    latent = [vae.config.latent_channels, size // 2, size // 2]
    posterior_noise = torch.randn([IMAGES] + latent, generator=g)
    noise = torch.randn([IMAGES] + latent, generator=g)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (IMAGES,),
                              generator=g)
    dataloader = torch.utils.data.DataLoader(
        Examples(pixels, order.tolist(), templates.tolist(), flips.tolist(), tokenizer),
        batch_size=BATCH, shuffle=False)
    text_encoder, optimizer, dataloader, lr_scheduler = accelerator.prepare(
        text_encoder, optimizer, dataloader, lr_scheduler)

    original = accelerator.unwrap_model(text_encoder).get_input_embeddings().weight.data.clone()
    losses, norms, rows, start = [], [], [original[placeholder_id].clone()], 0
    text_encoder.train()
    for batch in dataloader:
        rows_here = slice(start, start + batch["pixel_values"].shape[0])
        start = rows_here.stop
        with accelerator.accumulate(text_encoder):
            posterior = vae.encode(batch["pixel_values"]).latent_dist
            latents = (posterior.mean + posterior.std * posterior_noise[rows_here]).detach()
            latents = latents * vae.config.scaling_factor
            noisy = noise_scheduler.add_noise(latents, noise[rows_here], timesteps[rows_here])
            encoder_hidden_states = text_encoder(batch["input_ids"])[0]
            prediction = unet(noisy, timesteps[rows_here], encoder_hidden_states).sample
            loss = F.mse_loss(prediction.float(), noise[rows_here].float(), reduction="mean")
            accelerator.backward(loss)
            if accelerator.sync_gradients:  # the placeholder row's accumulated gradient
                grad = accelerator.unwrap_model(text_encoder).get_input_embeddings().weight.grad
                norms.append(grad[placeholder_id].norm().item())
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
            keep = torch.ones((len(tokenizer),), dtype=torch.bool)
            keep[placeholder_id] = False
            with torch.no_grad():
                accelerator.unwrap_model(text_encoder).get_input_embeddings().weight[keep] = \
                    original[keep]
        losses.append(loss.item())
        if accelerator.sync_gradients:
            weight = accelerator.unwrap_model(text_encoder).get_input_embeddings().weight
            rows.append(weight[placeholder_id].detach().clone())
    assert len(rows) == 3, "two optimizer steps: 2 micro-batches, then the epoch's lone one"

    save_file({
        "pixels": pixels.contiguous(), "order": order.float(), "templates": templates.float(),
        "flips": flips.float(), "posterior_noise": posterior_noise, "noise": noise,
        "timesteps": timesteps.float(), "losses": torch.tensor(losses),
        "gradient_norms": torch.tensor(norms),
        "embeddings": torch.stack(rows),
    }, os.path.join(OUT, "inversion.safetensors"), metadata={
        "placeholder": PLACEHOLDER, "initializer": INITIALIZER, "learning_rate": str(LR),
        "train_batch_size": str(BATCH), "gradient_accumulation_steps": str(ACCUMULATION),
        "templates": str(len(TEMPLATES))})
    print("losses", losses, "gradient norms", norms)
    print("moved", (rows[-1] - rows[0]).abs().max().item())


if __name__ == "__main__":
    main()
