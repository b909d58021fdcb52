"""Writes a randomly initialised Stable Diffusion 1.x pipeline with the full-size
configuration of CompVis/stable-diffusion-v1-4 (UNet, VAE, CLIP ViT-L/14 text encoder, its
49408-token tokenizer, PNDM scheduler), saved by diffusers' save_pretrained in fp16, for
docs/real-models.md: the code path a real checkpoint takes, with weights that draw noise.
About 2.1 GB; never committed, never in CI.

  tools/.venv-models/bin/python tools/make_sd_pipeline.py [OUT_DIR]   # default .build/sd-random
"""

import os
import sys

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", ".build", "sd-random")
torch.manual_seed(0)
# The configurations of CompVis/stable-diffusion-v1-4's unet/, vae/ and text_encoder/.
unet = UNet2DConditionModel(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                      "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                    "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
vae = AutoencoderKL(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2, norm_num_groups=32, sample_size=512)
text_encoder = CLIPTextModel(CLIPTextConfig(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
    num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
    projection_dim=768, bos_token_id=49406, eos_token_id=49407, pad_token_id=1))
# CLIP's own BPE (tools/make_tokenizer_fixtures.py rebuilt it from OpenAI's merges).
tokens = os.path.join(HERE, "..", "Tests", "DiffusionTests", "Fixtures", "tokenizer")
tokenizer = CLIPTokenizer(os.path.join(tokens, "vocab.json"), os.path.join(tokens, "merges.txt"),
                          model_max_length=77)
scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          num_train_timesteps=1000, set_alpha_to_one=False, skip_prk_steps=True,
                          steps_offset=1)
pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                               scheduler=scheduler, safety_checker=None, feature_extractor=None,
                               requires_safety_checker=False)
pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
print(out, {name: sum(p.numel() for p in m.parameters())
            for name, m in [("unet", unet), ("vae", vae), ("text_encoder", text_encoder)]})
