"""Builds the CLIP tokenizer fixtures of Tests/DiffusionTests/Fixtures/tokenizer.

Writes, as a diffusers model folder's tokenizer/ holds them:

  vocab.json, merges.txt   CLIP's byte-level BPE, rebuilt exactly as OpenAI's SimpleTokenizer
                           builds its encoder (and as openai/clip-vit-large-patch14 ships it):
                           the merges are lines[1:48895] of bpe_simple_vocab_16e6.txt.gz;
                           the vocabulary is the 256 byte characters, each again with "</w>",
                           one entry per merge, then <|startoftext|> and <|endoftext|>
                           (49408 ids); merges.txt opens with "#version: 0.2" as HF's does
  tokenizer_config.json,   as Stable Diffusion 1.x's tokenizer folder has them (legacy
  special_tokens_map.json  AddedToken dicts, pad_token "<|endoftext|>", model_max_length 77)
  variants/sd2/            config files only: SD 2.x / SDXL tokenizer_2, pad_token "!"
  variants/added/          config files only: a modern save with added_tokens_decoder and one
                           extra (textual-inversion style) token "<cat-toy>" = 49408
  tokens.json              transformers' CLIPTokenizer ids for > 400 varied strings, plain
                           (bos + tokens + eos) and padded (padding="max_length",
                           max_length=77, truncation=True); the variants' ids; a few decodes

The merges file ships inside the open_clip_torch wheel on PyPI (the only source reachable
here); the script downloads that wheel with pip unless --wheel names one already on disk, and
checks the file's sha256. The output is deterministic (the fuzzed strings use a fixed seed).

Run once, never in CI (needs transformers and tokenizers):
  python3 -m venv tools/.venv-models
  tools/.venv-models/bin/pip install transformers tokenizers
  tools/.venv-models/bin/python tools/make_tokenizer_fixtures.py [--wheel PATH.whl]
"""

import argparse
import glob
import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import zipfile

from transformers import CLIPTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "DiffusionTests", "Fixtures", "tokenizer")
BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
BPE_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77


# ---------------------------------------------------------------------------------------------
# vocab.json and merges.txt


def bytes_to_unicode():
    """GPT-2/CLIP's map from each byte to a printable character (printable bytes map to
    themselves, the rest to 256 + n in byte order)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    bytes_, chars = printable[:], printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            bytes_.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(bytes_, [chr(c) for c in chars]))


def read_bpe_lines(wheel):
    if wheel is None:
        with tempfile.TemporaryDirectory() as download:
            subprocess.check_call(
                [sys.executable, "-m", "pip", "download", "open_clip_torch==3.3.0", "--no-deps",
                 "-d", download]
            )
            path = glob.glob(os.path.join(download, "open_clip_torch-*.whl"))[0]
            data = zipfile.ZipFile(path).read(BPE_MEMBER)
    else:
        data = zipfile.ZipFile(wheel).read(BPE_MEMBER)
    assert hashlib.sha256(data).hexdigest() == BPE_SHA256, "unexpected " + BPE_MEMBER
    return gzip.decompress(data).decode("utf-8").split("\n")


def write_vocab_and_merges(wheel):
    lines = read_bpe_lines(wheel)
    merges = lines[1 : 49152 - 256 - 2 + 1]
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(m.split()) for m in merges]
    tokens += [BOS, EOS]
    assert len(tokens) == 49408 and len(set(tokens)) == 49408
    with open(os.path.join(OUT, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(tokens)}, f, ensure_ascii=False)
    with open(os.path.join(OUT, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


# ---------------------------------------------------------------------------------------------
# config files


def added_token(content, normalized=True):
    return {"__type": "AddedToken", "content": content, "lstrip": False,
            "normalized": normalized, "rstrip": False, "single_word": False}


def sd1_config(pad=EOS):
    """tokenizer_config.json and special_tokens_map.json as in SD 1.x's tokenizer folder."""
    config = {
        "add_prefix_space": False,
        "bos_token": added_token(BOS),
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": added_token(EOS),
        "errors": "replace",
        "model_max_length": MAX_LENGTH,
        "name_or_path": "openai/clip-vit-large-patch14",
        "pad_token": pad,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": added_token(EOS),
    }
    special = {k: config[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
    special = {k: ({x: y for x, y in v.items() if x != "__type"} if isinstance(v, dict) else v)
               for k, v in special.items()}
    return config, special


def added_config():
    """A save by a recent transformers: plain special tokens plus added_tokens_decoder, with
    one extra token as textual inversion adds it."""
    def entry(content, normalized, special):
        return {"content": content, "lstrip": False, "normalized": normalized,
                "rstrip": False, "single_word": False, "special": special}
    return {
        "added_tokens_decoder": {
            "49406": entry(BOS, True, True),
            "49407": entry(EOS, False, True),
            "49408": entry("<cat-toy>", True, False),
        },
        "bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS,
        "model_max_length": MAX_LENGTH,
        "tokenizer_class": "CLIPTokenizer",
    }


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_configs():
    config, special = sd1_config()
    write_json(os.path.join(OUT, "tokenizer_config.json"), config)
    write_json(os.path.join(OUT, "special_tokens_map.json"), special)
    config, special = sd1_config(pad="!")
    write_json(os.path.join(OUT, "variants", "sd2", "tokenizer_config.json"), config)
    write_json(os.path.join(OUT, "variants", "sd2", "special_tokens_map.json"), special)
    write_json(os.path.join(OUT, "variants", "added", "tokenizer_config.json"), added_config())


def load_variant(name):
    """transformers reads a folder: the variant's config files beside the shared vocabulary."""
    with tempfile.TemporaryDirectory() as folder:
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(OUT, f), folder)
        for f in os.listdir(os.path.join(OUT, "variants", name)):
            shutil.copy(os.path.join(OUT, "variants", name, f), folder)
        return CLIPTokenizer.from_pretrained(folder)


# ---------------------------------------------------------------------------------------------
# strings


HAND_WRITTEN = [
    "a photo of a cat",
    "", " ", "   ", "\t\n", "a", "A", "I", "!", ".", "'", "''", "'s",
    "A Photo Of A CAT", "a photo of an astronaut riding a horse on mars",
    "  leading spaces", "trailing spaces   ", "   both   ", "multiple     spaces  between",
    "tabs\tand\nnewlines\r\nand\u000bvertical\u000cfeeds", "\n\n\nnewlines only then text",
    "non\u00a0breaking\u2003em\u3000ideographic\u2028line\u2029para\u0085nel space",
    "zero\u200bwidth\u200cjoiner\u200dsoft\u00adhyphen\ufeffbom",
    "control\x1cchars\x1d\x1e\x1f\x00\x07\x7f", "mongolian\u180evowel separator",
    "don't", "DON'T", "it's", "IT'S", "we're", "they've", "I'm", "we'll", "he'd",
    "rock'n'roll", "o'clock", "'tis", "''s", "'S'T'RE", "'sa 'td 'rex",
    "l'amour", "aujourd'hui", "it\u2019s curly", "`backtick`", "\"quoted\"",
    "hello, world!", "wait... what?!", "!!!???...", "--==++**", "(parentheses) [brackets] {braces}",
    "a/b\\c|d", "email@example.com", "https://example.com/a?b=c&d=e#f", "#hashtag @mention",
    "$100 and 50% off", "C++ & C#", "~tilde^caret_", "<html><body>", "a<b>c",
    "1234", "3.14", "3,14", "1,000,000", "-42", "+7", "1e-5", "0x1F", "2nd 3rd 4th",
    "1990s", "12:30pm", "2024-01-31", "v1.5", "sd-v1-4", "x2", "4k 8k uhd",
    "½ ¼ ¾", "x² y³", "٣٤٥ arabic-indic digits", "Ⅻ roman numeral", "① circled", "𝟙𝟚𝟛",
    "café", "naïve", "résumé", "Ελλάδα", "ΣΑΣ", "ὈΔΥΣΣΕΎΣ", "straße", "STRASSE", "ẞ capital",
    "İstanbul", "ı dotless", "ǅ titlecase", "ǈǋǲ", "ﬁ ligature ﬂ", "Å Ω K", "µ micro",
    "niño", "façade", "Ærøskøbing", "Łódź", "Ñandú", "Ⓐⓑⓒ",
    "東京タワーの写真", "一只猫坐在窗台上", "고양이 사진", "ひらがなとカタカナ",
    "Москва ночью", "ПРИВЕТ мир", "עברית", "العربية", "हिन्दी", "ภาษาไทย", "ქართული",
    "🐱", "🐱🐶", "a 🐱 on a 🛋️", "👩‍👩‍👧‍👦 family", "🇫🇷 flag", "👍🏽", "❤️", "✨ magic ✨",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "ｈｅｌｌｏ！", "ﾊﾝｶｸ katakana",
    # Letters new in Unicode 15 and 16 (tokenizers' Oniguruma and Rust know them).
    "x\U0001e030y \u1c89ab \U00016d40z \U00031350", "\u0cf3 \U0001f6dc mark and symbol",
    "<|endoftext|>", "<|startoftext|>", "a <|endoftext|> b", "a<|endoftext|>b",
    "x<|startoftext|>y", "<|ENDOFTEXT|>", "<|StartOfText|>", "<|endoftext|><|endoftext|>",
    "<|endoftext|>>>", "!<|endoftext|>", "<|endoftext", "endoftext|>", "<||>", "<|>",
    "<|endoftext|>\u0338", "<|startoftext|>\u0338", "a <\u0338 b", "=\u0338",
    # Where the pattern's literal alternatives matter: an upper-case eos is not matched as a
    # token in SD 1.x, yet is one pre-token, so the punctuation after it stays apart.
    "<|ENDOFTEXT|>>>", "<|EndOfText|>.", "x <|ENDOFTEXT|>!?", "<|ENDOFTEXT|>'s",
    "a painting of <cat-toy>", "<CAT-TOY> on a beach", "<cat-toy><cat-toy>",
    "masterpiece, best quality, (highly detailed:1.2), [blurry], {{epic}}",
    "8k, trending on artstation, by greg rutkowski",
    "negative: lowres, bad anatomy, bad hands, text, error, missing fingers",
]

NFD_SOURCES = [
    "crème brûlée à la café", "Ångström", "Việt Nam phở", "한국어 고양이", "Ελληνικά ώρα",
    "ÉCOLE ÉTÉ", "ñandú niño",
]

WORDS = ["cat", "Photograph", "astronaut", "rIdInG", "über", "naïve", "東京", "Москва",
         "Ελλάδα", "12", "x"]
AFFIXES = [("", "!"), ("", "..."), ("", "'s"), ("", "'LL"), ("", "n't"), ("(", ")"),
           ("  ", "\t"), ("#", "?!"), ("", "3.5"), ("\"", "\"")]

FUZZ_POOLS = [
    "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
    " \t\n\u00a0\u3000  ", ".,!?;:'\"()[]{}<>|/\\-_+=*&^%$#@~`",
    "éèêëàâäçñßøåæœÉÀÇÑ", "αβγδΣΩπ", "жзийкЖЗИЙ", "日本語中文字", "ひらがなカタカナ",
    "\u0301\u0308\u0327\u0323\u0302", "🐱🐶🚀🎨❤️👍🏽", "ＡＢＣａｂｃ１２３", "İıǅﬁẞ",
]


def special_literal_pieces(rng):
    return rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "<|endoftext|>",
                       "<|startoftext|>", "<|", "|>"])


def fuzz_string(rng, length):
    pieces = []
    while len(pieces) < length:
        if rng.random() < 0.08:
            pieces.append(special_literal_pieces(rng))
        else:
            pieces.append(rng.choice(rng.choice(FUZZ_POOLS)))
    return "".join(pieces)


def long_prompts(rng):
    phrase = ("a highly detailed oil painting of a majestic lion standing on a rocky cliff at "
              "sunset, dramatic lighting, volumetric clouds, golden hour, by a famous artist, ")
    prompts = [phrase * k for k in (2, 3, 5)]
    # Around the 75-content-token boundary of max_length 77: each "a" is one token.
    prompts += [" ".join(["a"] * n) for n in (74, 75, 76, 77, 120)]
    prompts.append(" ".join(["photograph"] * 40) + " <|endoftext|> end")
    prompts.append("🐱" * 60)
    prompts += [" ".join(fuzz_string(rng, 12) for _ in range(20)) for _ in range(4)]
    prompts.append("ｆｕｌｌｗｉｄｔｈ ＰＲＯＭＰＴ " * 12)
    prompts.append("Dépêche-toi, l'été arrive! " * 10)
    return prompts


def make_strings():
    rng = random.Random(20240531)
    strings = list(HAND_WRITTEN)
    for s in NFD_SOURCES:
        strings.append(unicodedata.normalize("NFD", s))
    # Combining marks out of canonical order: NFC must reorder before composing.
    strings += ["a\u0302\u0323 ậ vs a\u0323\u0302", "e\u0301\u0301", "\u0301 leading mark"]
    for word in WORDS:
        for prefix, suffix in AFFIXES:
            strings.append(prefix + word + suffix)
    strings += [w.upper() + " " + w.lower() for w in WORDS]
    strings += [fuzz_string(rng, rng.randint(1, 40)) for _ in range(120)]
    strings += long_prompts(rng)
    unique = []
    for s in strings:
        if s not in unique:
            unique.append(s)
    return unique


# ---------------------------------------------------------------------------------------------
# tokens.json


def encode_cases(tokenizer, strings):
    cases = []
    for text in strings:
        plain = tokenizer(text)["input_ids"]
        padded = tokenizer(text, padding="max_length", max_length=MAX_LENGTH,
                           truncation=True)["input_ids"]
        assert len(padded) == MAX_LENGTH
        cases.append({"text": text, "ids": plain, "padded": padded})
    return cases


def decode_cases(tokenizer):
    texts = ["a photo of a cat", "Hello, World! It's 3.14", "café 東京 🐱", "a<|endoftext|>b"]
    cases = []
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        cases.append({"ids": ids, "text": tokenizer.decode(ids),
                      "skipSpecial": tokenizer.decode(ids, skip_special_tokens=True)})
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", help="an open_clip_torch wheel already downloaded")
    args = parser.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    write_vocab_and_merges(args.wheel)
    write_configs()

    tokenizer = CLIPTokenizer.from_pretrained(OUT)
    cat = tokenizer("a photo of a cat")["input_ids"]
    assert cat == [49406, 320, 1125, 539, 320, 2368, 49407], cat
    assert tokenizer.pad_token_id == 49407 and tokenizer.model_max_length == MAX_LENGTH

    strings = make_strings()
    sd2 = load_variant("sd2")
    added = load_variant("added")
    assert sd2.pad_token_id == 0 and added.convert_tokens_to_ids("<cat-toy>") == 49408
    variant_strings = [s for s in strings if "!" in s or "cat-toy" in s.lower()][:40]
    variant_strings += ["a cat", "a photo of <cat-toy>!", "x!y", "<cat-toy>"]
    fixture = {
        "source": "transformers %s CLIPTokenizer.from_pretrained" % __import__(
            "transformers").__version__,
        "maxLength": MAX_LENGTH,
        "bosTokenID": tokenizer.bos_token_id,
        "eosTokenID": tokenizer.eos_token_id,
        "padTokenID": tokenizer.pad_token_id,
        "vocabularySize": len(tokenizer),
        "cases": encode_cases(tokenizer, strings),
        "variants": {
            "sd2": {"padTokenID": sd2.pad_token_id, "vocabularySize": len(sd2),
                    "cases": encode_cases(sd2, variant_strings)},
            "added": {"padTokenID": added.pad_token_id, "vocabularySize": len(added),
                      "cases": encode_cases(added, variant_strings)},
        },
        "decode": decode_cases(tokenizer),
    }
    with open(os.path.join(OUT, "tokens.json"), "w", encoding="ascii") as f:
        # ASCII escapes keep NFD and invisible characters intact through any editor.
        json.dump(fixture, f, ensure_ascii=True, separators=(",", ":"))
    print("wrote %d strings (%d over %d tokens) to %s" % (
        len(strings), sum(len(c["ids"]) > MAX_LENGTH for c in fixture["cases"]), MAX_LENGTH, OUT))


if __name__ == "__main__":
    main()
