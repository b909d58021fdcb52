"""diffusers' Stable Diffusion pipelines for a pixel-space world model (duo's embedded default):
the pipelines need a VAE, so this one is an identity with scale factor 1. Shared by the tools
scripts that run the world model in diffusers."""

from types import SimpleNamespace

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer


class PixelSpace(torch.nn.Module):
    """An identity autoencoder: encode and decode return their input."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(scaling_factor=1.0, block_out_channels=[3], shift_factor=None,
                                      latents_mean=None, latents_std=None, force_upcast=False)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a dtype and device

    @property
    def device(self):
        return self.anchor.device

    @property
    def dtype(self):
        return self.anchor.dtype

    def encode(self, x, return_dict=True):
        dist = SimpleNamespace(sample=lambda generator=None: x, mode=lambda: x)
        return SimpleNamespace(latent_dist=dist)

    def decode(self, z, return_dict=True, generator=None):
        return (z,) if not return_dict else SimpleNamespace(sample=z)


def components(model):
    """The keyword arguments of a StableDiffusion(Img2Img)Pipeline for a world model folder."""
    return dict(
        tokenizer=CLIPTokenizer.from_pretrained(model, subfolder="tokenizer"),
        text_encoder=CLIPTextModel.from_pretrained(model, subfolder="text_encoder").eval(),
        unet=UNet2DConditionModel.from_pretrained(model, subfolder="unet").eval(),
        scheduler=DDPMScheduler.from_pretrained(model, subfolder="scheduler"),  # the folder's own, as duo
        vae=PixelSpace(), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
