# .ci/docker.sh: source it, then `trek_docker_up` ... `trek_docker_down` (as .ci/run does).
# Starts a private dockerd and a registry with basic auth on free local ports, makes sure the
# base image exists (cached as a `docker save` tarball between runs on the same machine), exports
# DOCKER_HOST, TREK_TEST_REGISTRY, TREK_TEST_REGISTRY_USER, TREK_TEST_REGISTRY_PASSWORD,
# TREK_BASE_IMAGE. trek_docker_down stops exactly the pids it started and removes its run dir.
# Needs root, Debian bookworm, the package registries. Pulls nothing from any image registry.

TREK_BASE_IMAGE=${TREK_BASE_IMAGE:-trek-base/python:3.11}
TREK_BASE_RECIPE=1 # bump when the recipe below changes: the cached tarball is then rebuilt
TREK_DOCKER_CACHE=${TREK_DOCKER_CACHE:-/var/cache/trek-ci}

_td_log() { printf 'docker-ci: %s\n' "$*" >&2; }
_td_now() { date +%s.%N; }
_td_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

_td_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_td_install() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v htpasswd >/dev/null || missing+=(apache2-utils)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] && return 0
  local t; t=$(_td_now)
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  _td_log "installed ${missing[*]} in $(_td_since "$t") s"
}

_td_make_base() { # debootstrap a minimal bookworm with Python 3.11 and `docker import` it
  local root mirror t
  t=$(_td_now)
  root="$TD_RUN/rootfs"
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || { _td_log "no Debian mirror in /etc/apt"; return 1; }
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" "$mirror" \
    >"$TD_RUN/debootstrap.log" 2>&1 || { tail -20 "$TD_RUN/debootstrap.log" >&2; return 1; }
  chroot "$root" /usr/bin/python3 -m venv /opt/venv # pip from Debian's bundled wheel, offline
  ln -sf python3 "$root/usr/bin/python"
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/*
  tar --numeric-owner -C "$root" -c . | docker import \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL trek.base.recipe=$TREK_BASE_RECIPE" \
    --change 'CMD ["python3"]' - "$TREK_BASE_IMAGE" >/dev/null
  rm -rf "$root"
  _td_log "built $TREK_BASE_IMAGE with debootstrap in $(_td_since "$t") s"
}

_td_base_image() {
  local tarball t
  tarball="$TREK_DOCKER_CACHE/$(echo "$TREK_BASE_IMAGE" | tr '/:' '__')-r$TREK_BASE_RECIPE.tar"
  t=$(_td_now)
  if docker image inspect "$TREK_BASE_IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  if [ -s "$tarball" ] && docker load -q -i "$tarball" >/dev/null 2>&1; then
    _td_log "loaded $TREK_BASE_IMAGE from cache in $(_td_since "$t") s"
    return 0
  fi
  _td_make_base || return 1
  mkdir -p "$TREK_DOCKER_CACHE"
  docker save -o "$tarball.tmp.$$" "$TREK_BASE_IMAGE" && mv -f "$tarball.tmp.$$" "$tarball"
}

_td_wait() { # _td_wait SECONDS CMD...: retry CMD every 0.1 s
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

trek_docker_up() {
  local t0 t port
  t0=$(_td_now)
  _td_install || return 1
  TD_RUN=$(mktemp -d /tmp/trek-ci-docker.XXXXXX)
  # dockerd: its own data root, exec root and socket, so it never meets another daemon's state.
  # --ip-forward=false leaves the host's net.ipv4.ip_forward alone: published 127.0.0.1 ports and
  # host-gateway work without it (only traffic from containers to other networks needs it).
  t=$(_td_now)
  dockerd --data-root "$TD_RUN/data" --exec-root "$TD_RUN/exec" --pidfile "$TD_RUN/dockerd.pid" \
    -H "unix://$TD_RUN/docker.sock" --ip-forward=false >"$TD_RUN/dockerd.log" 2>&1 &
  TD_DOCKERD_PID=$!
  export DOCKER_HOST="unix://$TD_RUN/docker.sock"
  if ! _td_wait 60 docker info; then
    _td_log "dockerd did not answer in 60 s; last log lines:"
    tail -20 "$TD_RUN/dockerd.log" >&2
    return 1
  fi
  _td_log "dockerd $(docker info -f '{{.ServerVersion}} {{.Driver}}') answered in $(_td_since "$t") s"
  TD_CONTAINERD_PID=$(cat "$TD_RUN/exec/containerd/containerd.pid" 2>/dev/null || true)
  _td_base_image || return 1
  # The registry: htpasswd (bcrypt) with a password made for this run, storage in the run dir.
  port=$(_td_free_port)
  TREK_TEST_REGISTRY_USER=trek
  TREK_TEST_REGISTRY_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
  htpasswd -Bbn "$TREK_TEST_REGISTRY_USER" "$TREK_TEST_REGISTRY_PASSWORD" >"$TD_RUN/htpasswd" 2>/dev/null
  cat >"$TD_RUN/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $TD_RUN/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: $(python3 -c 'import secrets; print(secrets.token_hex(16))')
auth:
  htpasswd:
    realm: trek-test
    path: $TD_RUN/htpasswd
EOF
  docker-registry serve "$TD_RUN/registry.yml" >"$TD_RUN/registry.log" 2>&1 &
  TD_REGISTRY_PID=$!
  # 401 without credentials is the answer we wait for: the registry is up and asks for them.
  if ! _td_wait 20 sh -c "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/v2/ | grep -q 401"; then
    _td_log "registry did not answer on 127.0.0.1:$port"
    tail -20 "$TD_RUN/registry.log" >&2
    return 1
  fi
  export TREK_TEST_REGISTRY="127.0.0.1:$port" TREK_TEST_REGISTRY_USER TREK_TEST_REGISTRY_PASSWORD
  export TREK_BASE_IMAGE TREK_REQUIRE_DOCKER=1
  _td_log "up in $(_td_since "$t0") s: DOCKER_HOST=$DOCKER_HOST TREK_TEST_REGISTRY=$TREK_TEST_REGISTRY"
}

_td_stop_pid() { # _td_stop_pid PID SECONDS: TERM, wait, then KILL; only that pid
  local pid=$1 n=$(($2 * 10))
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

trek_docker_down() {
  local t
  t=$(_td_now)
  _td_stop_pid "${TD_REGISTRY_PID:-}" 10
  # dockerd stops its containers (15 s grace each, in parallel) and the containerd it spawned.
  _td_stop_pid "${TD_DOCKERD_PID:-}" 40
  # containerd normally exits with dockerd; stop it only if it is still ours (cmdline names TD_RUN).
  if [ -n "${TD_CONTAINERD_PID:-}" ] && [ -r "/proc/$TD_CONTAINERD_PID/cmdline" ] && tr '\0' ' ' <"/proc/$TD_CONTAINERD_PID/cmdline" 2>/dev/null | grep -q "$TD_RUN"; then
    _td_stop_pid "$TD_CONTAINERD_PID" 10
  fi
  if [ -n "${TD_RUN:-}" ] && [ -d "$TD_RUN" ]; then
    if grep -q " $TD_RUN/" /proc/mounts; then
      _td_log "mounts left under $TD_RUN; not removing it"
    else
      rm -rf "$TD_RUN"
    fi
  fi
  TD_REGISTRY_PID= TD_DOCKERD_PID= TD_CONTAINERD_PID= TD_RUN=
  _td_log "down in $(_td_since "$t") s"
}
