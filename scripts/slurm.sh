#!/usr/bin/env bash
# A real, single-node Slurm cluster that tests start and stop themselves, for
# `firebreak launch slurm` (docs/slurm.md). Everything the cluster owns lives in
# one folder: a private munged (own socket, key, pid, log and seed files), a
# slurm.conf naming this machine (`hostname -s`) with its real CPUs and memory,
# controller and node daemons on free ports (never Slurm's defaults 6817/6818),
# their state, spool, pid and log files. Nothing is written to /etc, no systemd
# unit is touched, and several clusters can run side by side.
#
#   scripts/slurm.sh install    apt-get install Slurm and munge when missing
#   scripts/slurm.sh up DIR     write the cluster into DIR, start it, wait until
#                               the node is idle; prints `export SLURM_CONF=...`
#   scripts/slurm.sh down DIR   cancel its jobs, stop its daemons (pid files)
#   scripts/slurm.sh bench DIR  up, time two 8-task arrays of `sleep 1`, down
#
# Needs root (slurmd starts job steps as the submitting user, and the config
# says SlurmUser=root). Accounting is off (no slurmdbd): `squeue` and
# `scontrol show job` see a job while the controller keeps it (MinJobAge, set
# to 600 s here), and finished jobs are appended to DIR/log/jobcomp.txt
# (JobCompType=jobcomp/filetxt); `sacct` answers only with an error.
set -euo pipefail

die() { echo "slurm: $*" >&2; exit 1; }
say() { echo "slurm: $*" >&2; }

# Milliseconds since the epoch, for the timings `up` and `bench` print.
now_ms() { date +%s%3N; }

# Slurm's daemons live in /usr/sbin, which a non-login PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"

cmd_install() {
  if command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
    && command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1; then
    return 0
  fi
  say "installing slurmctld, slurmd, slurm-client and munge (apt)"
  apt-get update -qq
  # The three packages are what slurm-wlm pulls in that we use; without the
  # meta package and its recommends we skip the hdf5/influxdb/rrd plugins.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
  command -v slurmctld >/dev/null 2>&1 || die "slurmctld is still missing after apt-get install"
}

need_tools() {
  local tool
  for tool in slurmctld slurmd munged sinfo sbatch squeue scancel; do
    command -v "$tool" >/dev/null 2>&1 \
      || die "'$tool' not found; hint: run 'scripts/slurm.sh install' (apt-get install slurmctld slurmd slurm-client munge)"
  done
  [[ "$(id -u)" == 0 ]] || die "the test cluster needs root (slurmd and SlurmUser=root); running as $(id -un)"
}

# The TCP ports some socket of this machine is bound to (in any state), one per
# line, from /proc (no ss/netstat needed).
used_ports() {
  local file _sl local_address _rest
  for file in /proc/net/tcp /proc/net/tcp6; do
    [[ -r "$file" ]] || continue
    # local_address is ADDR:PORT in hex.
    while read -r _sl local_address _rest; do
      echo $((16#${local_address##*:}))
    done < <(tail -n +2 "$file")
  done
}

# free_port AVOID: a random port that no socket uses, that is not AVOID, and
# that lies outside the kernel's ephemeral range, so that no client connection
# (sinfo's, slurmd's own) can take it between our choice and the daemon's bind.
free_port() {
  local avoid="$1" used port tries low high ephemeral_low ephemeral_high
  read -r ephemeral_low ephemeral_high </proc/sys/net/ipv4/ip_local_port_range \
    || { ephemeral_low=32768 ephemeral_high=60999; }
  if ((ephemeral_low - 10000 >= 2000)); then
    low=10000 high=$((ephemeral_low - 1))
  else
    low=$((ephemeral_high + 1)) high=65535
  fi
  ((high - low >= 100)) || die "no port range outside the ephemeral ports $ephemeral_low-$ephemeral_high"
  used="$(used_ports | sort -u)"
  for ((tries = 0; tries < 200; tries++)); do
    port=$((low + (RANDOM * 32768 + RANDOM) % (high - low + 1)))
    [[ "$port" == "$avoid" ]] && continue
    grep -qx "$port" <<<"$used" || { echo "$port"; return 0; }
  done
  die "no free TCP port found in $low-$high"
}

# The absolute form of DIR, refusing names slurm.conf cannot hold.
absolute_dir() {
  local dir="$1"
  [[ -n "$dir" ]] || die "a cluster folder is needed: scripts/slurm.sh up|down DIR"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd -P)"
  [[ "$dir" =~ ^[A-Za-z0-9_./+-]+$ ]] \
    || die "cluster folder '$dir' has characters slurm.conf cannot hold; hint: use a path of letters, digits, '.', '_', '-', '/'"
  # A unix socket path holds at most 107 bytes.
  ((${#dir} + 20 < 108)) || die "cluster folder '$dir' is too long for munge's socket path (107 bytes); hint: use a shorter path"
  echo "$dir"
}

# pid_alive PIDFILE: the pid in PIDFILE names a running process.
pid_alive() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(cat "$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# stop_pids GRACE PIDFILE...: SIGTERM to each live pid at once, up to GRACE
# seconds for all of them to exit, then SIGKILL to those left; the pid files
# are removed.
stop_pids() {
  local grace="$1" file pid i
  shift
  local -a pids=()
  for file in "$@"; do
    if pid_alive "$file"; then
      pid="$(cat "$file")"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for ((i = 0; i < grace * 10 && ${#pids[@]} > 0; i++)); do
    local -a alive=()
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive+=("$pid")
    done
    pids=("${alive[@]}")
    ((${#pids[@]} > 0)) && sleep 0.1
  done
  for pid in "${pids[@]}"; do
    say "pid $pid ignored SIGTERM for $grace s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$@"
}

# The node line: this machine as slurmd sees it (CPUs, sockets, cores,
# threads, memory in MB), reached on the loopback address.
node_line() {
  local host="$1" detected
  detected="$(slurmd -C | head -n 1)" || die "'slurmd -C' failed to describe this machine"
  [[ "$detected" == NodeName=* ]] || die "unexpected 'slurmd -C' output: $detected"
  # Drop slurmd's own NodeName=...; keep CPUs=... Boards=... RealMemory=...
  echo "NodeName=$host NodeAddr=127.0.0.1 NodeHostname=$host ${detected#NodeName=* } State=UNKNOWN"
}

write_conf() {
  local dir="$1" host="$2" ctld_port="$3" slurmd_port="$4"
  cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm.sh up: a single-node test cluster, everything under
# $dir. See docs/slurm.md.
ClusterName=firebreak
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
# The private munged started by 'up'; AuthInfo's socket serves credentials too.
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
PlugStackConfig=$dir/plugstack.conf
# No cgroups: works in containers and needs no cgroup.conf.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# One array task per core, all at once.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Freed cores are refilled at the next pass: every second here, not Slurm's
# default 30-60 s (an 8-task array of 'sleep 1' on 2 CPUs: 8 s, not 10).
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1
MpiDefault=none
ReturnToService=2
# No slurmdbd: no accounting. Finished jobs are written to a text file, and the
# controller keeps them for 10 minutes (squeue -t all, scontrol show job).
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MinJobAge=600
# Debian's default mailer is absent; jobs never ask for mail here.
MailProg=/bin/true
# Quick turnarounds for tests.
KillWait=2
SlurmdTimeout=30
SlurmctldTimeout=30
$(node_line "$host")
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munged() {
  local dir="$1"
  mkdir -p "$dir/munge"
  chmod 0700 "$dir/munge"
  if [[ ! -s "$dir/munge/munge.key" ]]; then
    head -c 1024 /dev/urandom >"$dir/munge/munge.key"
  fi
  chmod 0400 "$dir/munge/munge.key"
  pid_alive "$dir/munge/munged.pid" && return 0
  # --force: munged refuses a socket whose directory tree has a world-writable
  # parent (as /tmp is); our own folder is 0700, which is what matters.
  munged --force \
    --socket="$dir/munge/munge.socket" \
    --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" \
    </dev/null >>"$dir/log/munged.out" 2>&1 \
    || die "munged failed to start; see $dir/munge/munged.log and $dir/log/munged.out"
}

# wait_for SECONDS COMMAND...: poll COMMAND every 0.1 s.
wait_for() {
  local limit="$1" deadline
  shift
  deadline=$(($(now_ms) + limit * 1000))
  until "$@" >/dev/null 2>&1; do
    (($(now_ms) < deadline)) || return 1
    sleep 0.1
  done
}

# wait_until_up DIR SECONDS: 0 once the node is idle; 1 as soon as a daemon
# has exited (its pid file names a dead process, or it wrote none within 5 s);
# 2 after SECONDS.
wait_until_up() {
  local dir="$1" started deadline file
  started="$(now_ms)"
  deadline=$((started + $2 * 1000))
  while (($(now_ms) < deadline)); do
    local written=2
    for file in "$dir/run/slurmctld.pid" "$dir/run/slurmd.pid"; do
      if [[ -s "$file" ]]; then
        pid_alive "$file" || return 1
      elif (($(now_ms) - started > 5000)); then
        return 1
      else
        written=$((written - 1))
      fi
    done
    # sinfo retries a controller that refuses connections for about 10 s; a
    # short timeout lets the next round notice a daemon that has died.
    ((written == 2)) && node_idle && return 0
    sleep 0.1
  done
  return 2
}

node_idle() {
  [[ "$(timeout 2 sinfo --noheader --Node --format='%T' 2>/dev/null)" == idle ]]
}

cmd_up() {
  need_tools
  local dir host ctld_port slurmd_port start
  dir="$(absolute_dir "${1:-}")"
  start="$(now_ms)"
  if pid_alive "$dir/run/slurmctld.pid"; then
    die "a cluster is already running in $dir; hint: scripts/slurm.sh down $dir"
  fi
  host="$(hostname -s)"
  mkdir -p "$dir/state" "$dir/spool" "$dir/run" "$dir/log"
  : >"$dir/plugstack.conf"
  export SLURM_CONF="$dir/slurm.conf"
  start_munged "$dir"
  wait_for 10 test -S "$dir/munge/munge.socket" \
    || die "munged's socket did not appear; see $dir/munge/munged.log"

  local attempt outcome
  for attempt in 1 2 3; do
    ctld_port="$(free_port 0)"
    slurmd_port="$(free_port "$ctld_port")"
    write_conf "$dir" "$host" "$ctld_port" "$slurmd_port"
    : >"$dir/log/slurmctld.log"
    : >"$dir/log/slurmd.log"
    # Both daemons fork into the background themselves. Their stdio goes to
    # files so a caller reading our output (a test's Command::output) is not
    # held open. -c: start with an empty state (a reused folder's old jobs are
    # dropped).
    slurmctld -c </dev/null >>"$dir/log/slurmctld.out" 2>&1 \
      || die "slurmctld failed to start; see $dir/log/slurmctld.log"
    slurmd </dev/null >>"$dir/log/slurmd.out" 2>&1 \
      || die "slurmd failed to start; see $dir/log/slurmd.log"
    outcome=0
    wait_until_up "$dir" 60 || outcome=$?
    ((outcome == 0)) && break
    # A port can still be taken between our check and the daemon's bind (by
    # another cluster starting beside this one): try other ports.
    if ((attempt < 3)) && grep -qs "Address already in use" "$dir/log/slurmctld.log" "$dir/log/slurmd.log"; then
      say "port $ctld_port or $slurmd_port was taken meanwhile; retrying with others"
      # A slurmd whose controller is gone sits out SIGTERM in its retries.
      stop_pids 1 "$dir/run/slurmd.pid" "$dir/run/slurmctld.pid"
      continue
    fi
    if ((outcome == 1)); then
      say "a Slurm daemon exited during start-up; its log:"
    else
      say "the node did not become idle within 60 s; sinfo says:"
      sinfo --Node --long >&2 || true
    fi
    tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    cmd_down "$dir"
    exit 1
  done
  say "cluster up in $dir in $(( $(now_ms) - start )) ms (node $host, controller port $ctld_port, slurmd port $slurmd_port)"
  echo "export SLURM_CONF=$dir/slurm.conf"
}

# The job steps of the cluster in DIR that outlived its daemons: every
# slurmstepd whose environment names DIR's slurm.conf, and the processes below
# it, one pid a line. (The processes of a shell that merely exported SLURM_CONF
# are not slurmstepd's and are left alone.)
leftover_steps() {
  local dir="$1" proc pid stat ppid comm
  local -A children=()
  local -a stepds=() queue=()
  for proc in /proc/[0-9]*; do
    pid="${proc#/proc/}"
    stat="$(cat "$proc/stat" 2>/dev/null)" || continue
    # "pid (comm) state ppid ...": comm may hold spaces, so cut at the last ')'.
    stat="${stat##*) }"
    ppid="${stat#* }"
    ppid="${ppid%% *}"
    children[$ppid]+=" $pid"
    comm="$(cat "$proc/comm" 2>/dev/null)" || continue
    if [[ "$comm" == slurmstepd ]] \
      && tr '\0' '\n' <"$proc/environ" 2>/dev/null | grep -qxF "SLURM_CONF=$dir/slurm.conf"; then
      stepds+=("$pid")
    fi
  done
  queue=("${stepds[@]}")
  while ((${#queue[@]} > 0)); do
    pid="${queue[0]}"
    queue=("${queue[@]:1}")
    echo "$pid"
    # shellcheck disable=SC2206 # a space-separated pid list
    [[ -n "${children[$pid]:-}" ]] && queue+=(${children[$pid]})
  done
}

cmd_down() {
  local dir="${1:-}" jobs i
  [[ -n "$dir" ]] || die "a cluster folder is needed: scripts/slurm.sh down DIR"
  [[ -d "$dir" ]] || die "no cluster folder $dir"
  dir="$(cd "$dir" && pwd -P)"
  export SLURM_CONF="$dir/slurm.conf"
  # Cancel the cluster's jobs first, so slurmd's job steps (slurmstepd and the
  # job's processes) end with it rather than outliving the daemons.
  if pid_alive "$dir/run/slurmctld.pid" && pid_alive "$dir/run/slurmd.pid"; then
    jobs="$(squeue --noheader --array --format='%i' 2>/dev/null || true)"
    if [[ -n "$jobs" ]]; then
      # shellcheck disable=SC2086 # one job id per word. Array tasks go by
      # their JOBID_TASK name: scancel refuses a task's own job id.
      scancel $jobs 2>/dev/null || true
      for ((i = 0; i < 100; i++)); do
        [[ -z "$(squeue --noheader --states=running,completing --format='%A' 2>/dev/null)" ]] && break
        sleep 0.1
      done
    fi
  fi
  # Both Slurm daemons take a second or more to shut down; stop them together.
  stop_pids 10 "$dir/run/slurmd.pid" "$dir/run/slurmctld.pid"
  stop_pids 10 "$dir/munge/munged.pid"
  # Normally nothing is left: the jobs were cancelled above. A step that still
  # runs (a job that ignored the cancel, a slurmd that died first) would live on
  # without its slurmd; end it and its processes.
  local -a left=()
  mapfile -t left < <(leftover_steps "$dir")
  if ((${#left[@]} > 0)); then
    say "ending ${#left[@]} leftover job-step processes: ${left[*]}"
    kill -TERM "${left[@]}" 2>/dev/null || true
    sleep 1
    kill -KILL "${left[@]}" 2>/dev/null || true
  fi
}

cmd_bench() {
  local up_start start end job round state
  BENCH_DIR="$(absolute_dir "${1:-}")"
  local dir="$BENCH_DIR"
  trap 'cmd_down "$BENCH_DIR"' EXIT
  up_start="$(now_ms)"
  cmd_up "$dir" >/dev/null
  mkdir -p "$dir/bench"
  # The first array also waits for slurmctld's first scheduling pass (about 3 s
  # after it starts); the second one shows the steady state.
  for round in first second; do
    start="$(now_ms)"
    job="$(sbatch --parsable --array=0-7 --cpus-per-task=1 --output="$dir/bench/%A_%a.out" \
      --wrap='sleep 1')" || die "sbatch failed"
    job="${job%%;*}"
    until [[ -z "$(squeue --noheader --jobs="$job" --format='%i' 2>/dev/null)" ]]; do
      sleep 0.1
    done
    end="$(now_ms)"
    state="$(scontrol show job "$job" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | sort | uniq -c | tr -s ' ' | paste -sd, -)"
    say "$round 8-task array of 'sleep 1' (job $job) on $(nproc) CPUs: done $((end - start)) ms after sbatch, $((end - up_start)) ms after 'up' began; states:$state"
  done
  start="$(now_ms)"
  trap - EXIT
  cmd_down "$dir"
  say "down in $(($(now_ms) - start)) ms"
}

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_up "${2:-}" ;;
  down) cmd_down "${2:-}" ;;
  bench) cmd_bench "${2:-}" ;;
  *)
    echo "usage: scripts/slurm.sh install | up DIR | down DIR | bench DIR" >&2
    exit 2
    ;;
esac
