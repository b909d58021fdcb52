#!/usr/bin/env bash
# Runs duo on classes of bad input and faults, and prints one Markdown table row per class:
# how many cases, how many ended in a one-line error (exit 1-127), how many did the right
# thing (exit 0 where the input is legal), and how many trapped or hung (must be 0).
# Usage: tools/bad_inputs.sh [path/to/duo]   (default .build/release/duo; RELIABILITY.md)
# VERBOSE=1 also prints each case with its exit status and first line of stderr.
set -u
DUO=$(realpath "${1:-.build/release/duo}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
"$DUO" world pretrain --steps 1 --batch-size 2 --out tiny > /dev/null 2>&1 || { echo "cannot pretrain a tiny model"; exit 1; }
M=tiny/model
"$DUO" synthesize --concept stripes --model $M --count 4 --steps 2 --no-filter --quiet --out pairs > /dev/null 2>&1
"$DUO" unlearn --concept stripes --model $M --pairs pairs --steps 1 --rank 2 --batch-size 2 --quiet --out run > /dev/null 2>&1
A=run/adapter.safetensors
printf '| class | cases | one-line error | did the right thing | trapped or hung |\n|---|---|---|---|---|\n'

class_name=""; cases=0; errors=0; fine=0; bad=0; badlist=""
begin() { class_name=$1; cases=0; errors=0; fine=0; bad=0; badlist=""; }
# case EXPECT CMD...: EXPECT is "error" (must fail cleanly) or "any" (exit 0 is fine too).
case_() {
  local expect=$1; shift
  cases=$((cases + 1))
  timeout 120 "$DUO" "$@" > out.txt 2> err.txt < /dev/null
  local rc=$?
  local lines; lines=$(grep -c '^Error:' err.txt)
  [ -n "${VERBOSE:-}" ] && echo "  rc=$rc $* -> $(grep -v ETA err.txt | grep -m1 . | cut -c1-160)" >&2
  if [ $rc -ge 124 ] || grep -q 'Program crashed\|Fatal error' err.txt; then
    bad=$((bad + 1)); badlist="$badlist [$*]"
  elif [ $rc -eq 0 ] && [ "$expect" = any ]; then
    fine=$((fine + 1))
  elif [ $rc -ge 1 ] && [ $rc -le 123 ] && { [ "$lines" -le 1 ] || ! grep -q NSCocoaErrorDomain err.txt; }; then
    errors=$((errors + 1))
  else
    bad=$((bad + 1)); badlist="$badlist [rc=$rc $*]"
  fi
}
end() { printf '| %s | %d | %d | %d | %d%s |\n' "$class_name" $cases $errors $fine $bad "${badlist:+ :$badlist}"; }

head -c 300 /dev/urandom > junk.bin; : > empty.bin; mkdir -p afolder
printf 'name = "x"\n' > partial.toml
sed 's/^name = .*/name = "..\/..\/etc\/x"/' "$(dirname "$DUO")"/duo_World.resources/Resources/concepts/stripes.toml > escape.toml 2>/dev/null
sed 's/^pairs = .*/pairs = 99999999999999999999999/' "$(dirname "$DUO")"/duo_World.resources/Resources/concepts/stripes.toml > big.toml 2>/dev/null
sed 's|^explicit = "stripes/explicit.txt"|explicit = "/etc/os-release"|' "$(dirname "$DUO")"/duo_World.resources/Resources/concepts/stripes.toml > abs.toml 2>/dev/null
python3 - <<'PY'
import struct, json
def st(path, tensors, meta=None):
    header = {k: {"dtype": "F32", "shape": s, "data_offsets": [0, 0]} for k, (s, v) in tensors.items()}
    off = 0; data = b""
    for k, (s, v) in tensors.items():
        b = struct.pack("<%df" % len(v), *v); header[k]["data_offsets"] = [off, off + len(b)]; off += len(b); data += b
    if meta: header["__metadata__"] = meta
    h = json.dumps(header).encode(); open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
st("nanlatents.safetensors", {"latents": ([1, 3, 32, 32], [float("nan")] * 3072)})
st("inflatents.safetensors", {"latents": ([1, 3, 32, 32], [float("inf")] * 3072)})
st("shape.safetensors", {"latents": ([2, 3], [0.0] * 6)})
st("nolora.safetensors", {"x": ([1], [0.0])})
PY

begin "unreadable files (junk, empty, folders, missing) as model, adapter, PNG, concept, latents"
for f in junk.bin empty.bin afolder /nonexistent; do
  case_ error inspect $f; case_ error sample --model $f --prompt a --out x.png
  case_ error sample --model $M --lora $f --prompt a --out x.png; case_ error synthesize --concept $f.toml
  case_ error world detect --concept stripes $f; case_ error sample --model $M --latents $f --prompt a --out x.png
  case_ error eval --concept stripes --model $M --adapter $f --prompts 1 --seeds 1 --keep-prompts 2 --steps 1 --out r
done
end

begin "bad concept files (partial, escaping name, huge integer, absolute set path)"
for f in partial.toml escape.toml big.toml abs.toml; do
  case_ error synthesize --concept $f --model $M --out p-$f; case_ error eval --concept $f --model $M --out r-$f
done
end

begin "non-finite values (NaN/inf latents, scales, guidance, learning rates)"
case_ error sample --model $M --latents nanlatents.safetensors --prompt a --steps 1 --out x.png
case_ error sample --model $M --latents inflatents.safetensors --prompt a --steps 1 --out x.png
case_ error sample --model $M --latents shape.safetensors --prompt a --steps 1 --out x.png
for v in nan inf -inf; do
  case_ error sample --model $M --lora $A --lora-scale $v --prompt a --out x.png
  case_ error sample --model $M --guidance $v --prompt a --out x.png
  case_ error merge --model $M --lora $A --lora-scale $v --out merged
  case_ error unlearn --concept stripes --model $M --pairs pairs --lr $v --out u
  case_ error unlearn --concept stripes --model $M --pairs pairs --beta $v --out u
  case_ error unlearn --concept stripes --model $M --pairs pairs --method dspo --dspo-beta $v --out u
  case_ error synthesize --concept stripes --model $M --strength $v --out p
  case_ error eval --concept stripes --model $M --detector-timeout $v --out r
done
end

begin "out-of-range numbers (negative, zero, past Int, sizes the machine cannot hold)"
for args in "--seed -1" "--steps 0" "--steps -5" "--count 0" "--height 0" "--height 7" "--height 1000000 --width 1000000" \
            "--height 100000" "--count 100000000" "--seed 99999999999999999999999"; do
  case_ error sample --model $M --prompt a --out x.png $args
done
case_ error unlearn --concept stripes --model $M --pairs pairs --batch-size 100000000 --out u
case_ error unlearn --concept stripes --model $M --pairs pairs --rank 100000 --out u
case_ error unlearn --concept stripes --model $M --pairs pairs --t-max 100000 --out u
case_ error world pretrain --steps 1 --batch-size 100000000 --out pt
case_ error attack ring-a-bell --concept stripes --model $M --population 100000000 --count 1 --out q.txt
case_ error attack unlearndiff --concept stripes --model $M --adapter $A --prefix 100000 --count 1 --out q.csv
case_ error attack unlearndiff --concept stripes --model $M --adapter $A --timesteps 100000 --count 1 --out q.csv
case_ error attack concept-inversion --concept stripes --model $M --pairs pairs --adapter $A --batch-size 100000000 --out q.txt
end

begin "output paths (one-character names, folders, missing folders, files owned by the user)"
mkdir -p victim; echo precious > victim/keep.txt; echo mine > mine.txt
for o in x ab . x/ afolder missing/x.txt mine.txt; do
  case_ any attack ring-a-bell --concept stripes --model $M --generations 1 --population 4 --count 1 --quiet --out $o
done
case_ error eval --concept stripes --model $M --prompts 1 --seeds 1 --keep-prompts 2 --steps 1 --quiet --out victim
case_ error eval --concept stripes --model $M --prompts 1 --seeds 1 --keep-prompts 2 --steps 1 --quiet --out mine.txt
case_ error eval --concept stripes --model $M --adapter $A --label ../../x --prompts 1 --seeds 1 --keep-prompts 2 --steps 1 --out r
case_ error sample --model $M --prompt a --count 16 --out missing/dir/x.png
case_ error unlearn --concept stripes --model $M --pairs pairs --steps 1 --out victim
case_ error merge --model $M --lora $A --out afolder
end
[ "$(cat victim/keep.txt)" = precious ] && [ "$(cat mine.txt)" = mine ] || echo "| a user's file was changed | | | | 1 |"

# Model folders whose configs give a size of zero, below zero or past any model's, and files
# a user keeps where a run writes (the second sweep, 2026-12-06).
begin "model sizes out of range, and a user's files with the names a run writes"
setkey() {  # setkey NAME FILE KEY JSON: a copy of the tiny model with one config value changed
  rm -rf m_$1; cp -r $M m_$1
  python3 -c "import json,sys;p='m_$1/$2';j=json.load(open(p));j['$3']=json.loads(sys.argv[1]);json.dump(j,open(p,'w'))" "$4"
}
setkey a text_encoder/config.json num_attention_heads 0
setkey b text_encoder/config.json num_hidden_layers -1
setkey c unet/config.json norm_num_groups 0
setkey d unet/config.json layers_per_block 1000000000
setkey e unet/config.json norm_eps -1
setkey f scheduler/scheduler_config.json num_train_timesteps 1000000000000
for x in a b c d e f; do case_ error sample --model m_$x --prompt a --steps 2 --out s_$x.png; done
python3 - <<'PY'
import struct, json
h = {"unet.down_blocks.0.resnets.0.conv1.lora_A.weight": {"dtype": "F32", "shape": [0, 32, 3, 3], "data_offsets": [0, 0]},
     "unet.down_blocks.0.resnets.0.conv1.lora_B.weight": {"dtype": "F32", "shape": [32, 0, 1, 1], "data_offsets": [0, 0]}}
b = json.dumps(h).encode(); open("rank0.safetensors", "wb").write(struct.pack("<Q", len(b)) + b)
PY
case_ error merge --model $M --lora rank0.safetensors --out merged0
mkdir -p users/run users/pt/model; for f in users/photo.png users/run/config.json users/grid.png \
  users/det.safetensors users/ci.checkpoint.safetensors users/pt/model/mine.txt; do echo precious > $f; done
case_ error sample --model $M --prompt a --steps 1 --out users/photo.png
case_ error unlearn --concept stripes --model $M --pairs pairs --steps 1 --force --out users/run
case_ error world check --model $M --steps 1 --samples 2 --grid users/grid.png
case_ error world detect --steps 1 --train-to users/det.safetensors
case_ error attack concept-inversion --concept stripes --model $M --pairs pairs --adapter $A --steps 1 --count 1 --quiet --out users/ci.txt
case_ error world pretrain --steps 1 --out users/pt
case_ error merge --model $M --lora $A --out $M/inside
case_ error eval --concept stripes --model $M --prompts 1 --steps 1 --seeds 1000000000 --out r
end
[ "$(cat users/photo.png users/run/config.json users/grid.png users/det.safetensors users/ci.checkpoint.safetensors users/pt/model/mine.txt | sort -u)" = precious ] ||
  echo "| a user's file was changed | | | | 1 |"

begin "options (missing values, unknown names, combinations that make no sense)"
case_ error sample --model $M --prompt a --lora-scale 2 --out x.png
case_ error sample --model $M --prompt a --scheduler bogus --out x.png
case_ error sample --model $M --prompt a --out x.jpg
case_ error unlearn --concept stripes --method bogus
case_ error unlearn --concept stripes --targets bogus
case_ error unlearn --concept stripes --method esd --pairs pairs
case_ error unlearn --concept stripes --method esd --beta 5
case_ error unlearn --concept stripes --method dspo --beta 5
case_ error unlearn --concept stripes --dspo-beta 0.1
case_ error unlearn --concept stripes --train-method xattn
case_ error unlearn --concept stripes --model $M --method esd --esd-preset bogus --steps 1 --out esd
case_ error unlearn --concept stripes --model $M --method esd --esd-preset reference --rank 4 --steps 1 --out esd
case_ error unlearn --concept stripes --method esd --ddim-steps 1
case_ error unlearn --concept stripes --method esd --esd-prompt ""
case_ error unlearn --concept stripes --model $M --pairs pairs --prompted-share 0.5 --lambda-unconditional 1
case_ error eval --concept stripes --model $M --label a --label b --adapter $A
case_ error eval --concept stripes --model $M --attack-set nonsense
case_ error eval --concept stripes --model $M --attack-set x=$A@nobody
case_ error eval --concept stripes --model $M --attack-set x=$A@original --attack-set x=$A
case_ error unlearn --concept stripes --model $M --pairs pairs --steps 1 --lambda 0 --out run
case_ error unlearn --concept stripes --model $M --pairs /nonexistent
case_ error sample --model $M --lora nolora.safetensors --prompt a --out x.png
end

begin "external detectors (crash, hang, garbage, children left behind)"
printf 'sleep 300 &\nsleep 300\n' > hang.sh
for d in "exit 3" "/bin/sh hang.sh" "echo garbage" "while read p; do echo '{\"path\": \"nowhere\", \"score\": 1}'; done" "/nonexistent/detector"; do
  case_ error eval --concept stripes --model $M --prompts 1 --seeds 1 --keep-prompts 2 --steps 1 --quiet --detector "$d" --detector-timeout 2 --out r
done
end
left=$(for p in /proc/[0-9]*; do { tr '\0' ' ' < $p/cmdline; } 2>/dev/null; echo; done | grep -c '^sleep 300 $')
[ "$left" = 0 ] || echo "| detector children left running | | | | $left |"

# Faults: a second writer while the first runs, and runs killed with SIGKILL then run again,
# whose outputs must equal an uninterrupted run's bytes.
begin "concurrent writers and killed runs (kill -9, then the same command or --resume)"
"$DUO" synthesize --concept stripes --model $M --count 16 --steps 20 --no-filter --quiet --out busy > /dev/null 2>&1 &
first=$!; sleep 1
case_ error synthesize --concept stripes --model $M --count 16 --steps 20 --no-filter --quiet --out busy
case_ error unlearn --concept stripes --model $M --pairs pairs --steps 1 --out busy-run --pairs busy
wait $first
synth="synthesize --concept stripes --model $M --count 8 --steps 8 --batch-size 2 --no-filter --quiet"
train="unlearn --concept stripes --model $M --pairs pairs --steps 12 --checkpoint-every 3 --rank 2 --batch-size 2 --quiet"
"$DUO" $synth --out straight-pairs > /dev/null 2>&1; "$DUO" $train --out straight-run > /dev/null 2>&1
for delay in 0.5 1 2; do
  "$DUO" $synth --out killed-pairs-$delay > /dev/null 2>&1 & pid=$!; sleep $delay; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  case_ any $synth --out killed-pairs-$delay
  cmp -s straight-pairs/manifest.jsonl killed-pairs-$delay/manifest.jsonl || { bad=$((bad + 1)); badlist="$badlist [pairs differ after a kill at ${delay}s]"; }
  "$DUO" $train --out killed-run-$delay > /dev/null 2>&1 & pid=$!; sleep $delay; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  if [ -f killed-run-$delay/checkpoint.safetensors ]; then case_ any $train --out killed-run-$delay --resume
  else case_ any $train --out killed-run-$delay; fi
  cmp -s straight-run/adapter.safetensors killed-run-$delay/adapter.safetensors || { bad=$((bad + 1)); badlist="$badlist [adapter differs after a kill at ${delay}s]"; }
done
end
