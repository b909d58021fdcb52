"""Builds Tests/TensorTests/Fixtures/bf16.safetensors: PyTorch's float32 -> bfloat16 rounding
and a matrix product of bfloat16-rounded operands, the reference of duo's mixed-precision GEMM
(Sources/CKernels/gemm_bf16.c).

  values, values_bf16: float32 values (ties to even and odd, the largest finite values that
      round to infinity or not, subnormals, infinities, NaN, random values over the whole
      exponent range) and torch's `.to(torch.bfloat16)` of each.
  a [13, 301], b [301, 35]: random float32 operands (k odd and past one packed slice of 256).
  c [13, 35]: a.bfloat16() @ b.bfloat16() in float64 (exact products, one rounding to float32);
  bound [13, 35]: sum_k |a_ik| |b_kj| of the rounded operands, for the float32-accumulation
      tolerance.

Run once, never in CI (needs torch): tools/.venv-models/bin/python tools/make_bf16_fixture.py
"""

import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "TensorTests", "Fixtures", "bf16.safetensors")


def from_bits(bits):
    return torch.tensor(bits, dtype=torch.int64).to(torch.int32).view(torch.float32)


def main():
    g = torch.Generator().manual_seed(0)
    edges = [
        0x3F808000,  # 1 + 2^-8: a tie, even below -> down
        0x3F818000,  # a tie, odd below -> up
        0x3F808001,  # just past a tie -> up
        0x3F807FFF,  # just below -> down
        0xBF818000,  # negative tie
        0x7F7FFFFF,  # largest float32: rounds to infinity
        0x7F7F7FFF,  # largest that stays finite
        0x00000001,  # smallest subnormal
        0x00018000,  # subnormal tie
        0x80000000,  # -0
        0x7F800000,  # +inf
        0xFF800000,  # -inf
        0x7FC00000,  # NaN
        0x7F800001,  # signalling NaN: stays NaN
    ]
    random_bits = torch.randint(0, 2**32, (2000,), generator=g, dtype=torch.int64)
    values = torch.cat([from_bits(edges), from_bits(random_bits.tolist())])
    a = torch.randn(13, 301, generator=g)
    b = torch.randn(301, 35, generator=g) * 0.1
    ar = a.to(torch.bfloat16).double()
    br = b.to(torch.bfloat16).double()
    save_file(
        {
            "values": values.contiguous(),
            "values_bf16": values.to(torch.bfloat16).contiguous(),
            "a": a.contiguous(),
            "b": b.contiguous(),
            "c": (ar @ br).float().contiguous(),
            "bound": (ar.abs() @ br.abs()).float().contiguous(),
        },
        OUT,
        metadata={"torch": torch.__version__},
    )
    print(OUT)


if __name__ == "__main__":
    main()
