#!/bin/bash
# Regenerates the committed evaluation of one embedded-world concept (reports/CONCEPT/eval):
# original, DUO, DUO lambda=0, DSPO, ESD-u and ESD-x (the reference preset), UCE, under the
# concept file's sets (explicit, paraphrase, fragments), Ring-A-Bell, and the UnlearnDiffAtk and
# Concept Inversion sets, the white-box sets made
# against each model (`--attack-set NAME=PATH@LABEL`). Every step is skipped when its output
# exists, and the long ones resume, so a stopped run is continued by running it again.
#
#   tools/regenerate_reports.sh CONCEPT WORKDIR [DUO]
#
# WORKDIR holds pairs/, adapters/, attacks/ and the report (WORKDIR/reports/CONCEPT/eval; copy
# it to reports/ to commit it). DUO is the duo binary (default .build/release/duo).
set -euo pipefail
concept=${1:?concept (stripes or splatter)}
work=${2:?work folder}
duo=$(realpath "${3:-.build/release/duo}")
mkdir -p "$work" && cd "$work"
a=adapters/$concept
step() { echo "== $(date +%H:%M:%S) $*"; }
# --resume when an earlier run left a checkpoint (without it, duo starts that run over).
resume() { [ -e "$1" ] && echo --resume || true; }

[ -e pairs/$concept/summary.json ] || { step synthesize; "$duo" synthesize --concept $concept; }
[ -e $a/duo/adapter.safetensors ] || { step DUO; "$duo" unlearn --concept $concept --out $a/duo $(resume $a/duo/checkpoint.safetensors); }
[ -e $a/duo-lambda0/adapter.safetensors ] ||
  { step "DUO lambda 0"; "$duo" unlearn --concept $concept --lambda 0 --out $a/duo-lambda0 \
    $(resume $a/duo-lambda0/checkpoint.safetensors); }
[ -e $a/dspo/adapter.safetensors ] || { step DSPO; "$duo" unlearn --concept $concept --method dspo \
  --out $a/dspo $(resume $a/dspo/checkpoint.safetensors); }
[ -e $a/esd-u/unet.safetensors ] || { step ESD-u; "$duo" unlearn --concept $concept --method esd \
  --esd-preset reference --train-method noxattn --out $a/esd-u $(resume $a/esd-u/checkpoint.safetensors); }
[ -e $a/esd-x/unet.safetensors ] || { step ESD-x; "$duo" unlearn --concept $concept --method esd \
  --esd-preset reference --train-method xattn --out $a/esd-x $(resume $a/esd-x/checkpoint.safetensors); }
[ -e $a/uce/adapter.safetensors ] || { step UCE; "$duo" unlearn --concept $concept --method uce --out $a/uce; }

labels=(original DUO DUO-lambda0 DSPO ESD-u ESD-x UCE)
files=("" $a/duo/adapter.safetensors $a/duo-lambda0/adapter.safetensors $a/dspo/adapter.safetensors
  $a/esd-u/unet.safetensors $a/esd-x/unet.safetensors $a/uce/adapter.safetensors)
sets=(--attack-set ring-a-bell=attacks/$concept/ring-a-bell.txt)
[ -e attacks/$concept/ring-a-bell.txt ] ||
  { step Ring-A-Bell; "$duo" attack ring-a-bell --concept $concept --out attacks/$concept/ring-a-bell.txt; }
for i in "${!labels[@]}"; do
  label=${labels[$i]}
  target=(); [ -n "${files[$i]}" ] && target=(--adapter "${files[$i]}")
  # The white-box attacks search against an unlearned model; the original has nothing to
  # break (its column under them stays empty).
  if [ -n "${files[$i]}" ]; then
    uda=attacks/$concept/unlearndiff-$label.csv
    # A finished attack has one row per target prompt; a rerun continues an unfinished one.
    step "UnlearnDiffAtk against $label"
    "$duo" attack unlearndiff --concept $concept "${target[@]}" --out $uda --quiet
    sets+=(--attack-set "unlearndiff=$uda@$label")
    inv=attacks/$concept/concept-inversion-$label.txt
    [ -e $inv ] || { step "Concept Inversion against $label"
      "$duo" attack concept-inversion --concept $concept "${target[@]}" --out $inv --quiet \
        $(resume ${inv%.txt}.checkpoint.safetensors); }
    sets+=(--attack-set "concept-inversion=$inv@$label")
  fi
done

models=()
for i in "${!labels[@]}"; do
  [ -n "${files[$i]}" ] && models+=(--adapter "${files[$i]}" --label "${labels[$i]}")
done
step eval
"$duo" eval --concept $concept "${models[@]}" "${sets[@]}" --seeds 4 --keep-prompts 200 \
  --out reports/$concept/eval
