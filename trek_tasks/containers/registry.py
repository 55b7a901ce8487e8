"""Script images in a registry: what a tag points at there, the credentials, the push.

"Pushed" is the registry's answer, never a local note: its manifest for the tag names a
config blob whose digest is the local image's id (an image id *is* its config digest),
so an image pushed from another machine counts too, and a registry that lost it does not.

Credentials come from trek's config (``docker_username``/``docker_password``, for the
host of ``docker_registry`` only) or else from Docker's own store, read by the docker
SDK's rules (``$DOCKER_CONFIG``/``~/.docker/config.json``: the ``credHelpers`` entry of
the registry, else ``credsStore``, through ``docker-credential-<name> get``; else the
``auths`` entry). They go to the daemon (the push) and to the registry's API (the
manifest check: basic auth, or a bearer token fetched from the realm of the registry's
``WWW-Authenticate`` challenge), and nowhere else: no output, message or log names them.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import socket
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING, Any

from trek_tasks.config import DEFAULT_REGISTRY, Config
from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.events import emit
from trek_tasks.files import display

if TYPE_CHECKING:
    import docker

    from trek_tasks.containers.images import Image
    from trek_tasks.progress import ImagePushed
    from trek_tasks.project import Script

DOCKER_HUB = "docker.io"
_HUB_API = "registry-1.docker.io"  # where docker.io's registry API answers
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
# Multi-platform lists: asked for too, so the registry does not convert them; a tag
# holding one is not an image this daemon pushed, hence never "pushed" (no config digest).
INDEX_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
# The push statuses after which a layer is in the registry ("Mounted from <repo>" too).
_LAYER_DONE = ("Pushed", "Layer already exists", "Mounted from")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Reference:
    """An image name split as the registry sees it: ``registry/name:tag``."""

    registry: str  # host[:port] as written in the name (``docker.io`` when none is)
    name: str  # the repository inside the registry (``dev/detectredis``)
    tag: str

    @property
    def repository(self) -> str:
        """What ``docker push`` takes without the tag."""
        return f"{self.registry}/{self.name}"

    @property
    def api_host(self) -> str:
        return _HUB_API if self.registry == DOCKER_HUB else self.registry

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}"


def parse_reference(image: str) -> Reference:
    """Docker's rule: the first component is a registry when it has a dot or a port or is
    ``localhost``; otherwise the name is on Docker Hub. No tag means ``latest``."""
    if "@" in image:
        raise BadInput(f"'{image}': trek pushes tags, not digests", "image")
    slash, colon = image.rfind("/"), image.rfind(":")
    repo, tag = (image[:colon], image[colon + 1 :]) if colon > slash else (image, "latest")
    first, sep, rest = repo.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return Reference(first, rest, tag)
    return Reference(DOCKER_HUB, repo if sep else f"library/{repo}", tag)


def registry_of(setting: str) -> str:
    """The registry host of a ``docker_registry`` setting (``host:port/dev`` → ``host:port``)."""
    return parse_reference(f"{setting.rstrip('/')}/x").registry


@dataclass(frozen=True)
class Credentials:
    """A user and password for one registry; ``source`` says where they were found (a
    config file, Docker's config file or a credential helper) and is safe to show."""

    username: str
    password: str = field(repr=False)
    source: str

    def basic(self) -> str:
        """The ``Authorization`` header value of HTTP basic auth."""
        pair = f"{self.username}:{self.password}".encode()
        return f"Basic {base64.b64encode(pair).decode()}"

    def auth_config(self) -> dict[str, str]:
        """What the docker SDK's push takes (sent to the daemon, nothing written to disk)."""
        return {"username": self.username, "password": self.password}


def find_credentials(registry: str, config: Config) -> Credentials | None:
    """The credentials for ``registry``: trek's config first, then Docker's store; None
    when neither has any (the registry may not ask for them)."""
    configured = _configured(registry, config)
    return configured if configured is not None else _docker_store(registry)


def _configured(registry: str, config: Config) -> Credentials | None:
    user = str(config.get("docker_username") or "")
    password = str(config.get("docker_password") or "")
    own = str(config.get("docker_registry") or DEFAULT_REGISTRY)
    if not (user or password) or registry_of(own) != registry:
        return None
    if not (user and password):
        given, missing = ("docker_username", "docker_password")[:: 1 if user else -1]
        source = config.sources.get(given)
        raise BadInput(
            f"{given} is set but {missing} is not: the two go together",
            display(source) if source else "config",
        )
    source = config.sources.get("docker_password")
    return Credentials(user, password, display(source) if source else "config")


def _docker_store(registry: str) -> Credentials | None:
    """Docker's credentials for ``registry`` (what ``docker login`` stored)."""
    import docker.auth
    import docker.credentials
    from docker.utils.config import find_config_file

    path = find_config_file()
    if path is None:
        return None
    auth = docker.auth.load_config(path)
    helper = auth.get_credential_store(registry)  # its credHelpers entry, else credsStore
    if helper:
        server = docker.auth.INDEX_URL if registry == DOCKER_HUB else registry
        with warnings.catch_warnings():  # the SDK warns of a missing helper; we say it below
            warnings.simplefilter("ignore")
            store = docker.credentials.Store(helper)
        try:
            found = store.get(server)
        except docker.credentials.CredentialsNotFound:
            pass
        except docker.credentials.StoreError as err:
            raise StepFailed(f"credentials for {registry}: {err}", display(Path(path))) from None
        else:
            if found.get("Username") and found["Username"] != docker.auth.TOKEN_USERNAME:
                return Credentials(found["Username"], found["Secret"], store.program)
    entries: dict[str, dict[str, Any]] = auth.auths
    entry = entries.get(registry) or next(
        (e for key, e in entries.items() if docker.auth.resolve_index_name(key) == registry), {}
    )
    if entry.get("username") and entry.get("password"):
        return Credentials(entry["username"], entry["password"], display(Path(path)))
    return None


def plain_http(client: docker.DockerClient, registry: str) -> bool:
    """Whether the daemon talks plain HTTP to ``registry``, as its insecure-registries
    settings say (a ``--insecure-registry`` entry, or an address in one of their CIDRs:
    127.0.0.0/8 by default). The registry API is asked the same way."""
    settings = client.info().get("RegistryConfig") or {}
    index = (settings.get("IndexConfigs") or {}).get(registry)
    if index is not None:
        return not index.get("Secure", True)
    networks = [ipaddress.ip_network(c) for c in settings.get("InsecureRegistryCIDRs") or ()]
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    try:
        found = socket.getaddrinfo(host.strip("[]"), None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found}
    return any(a in n for a in addresses for n in networks if a.version == n.version)


class RegistryApi:
    """The registry's HTTP API for one repository, authenticated as its challenge asks."""

    def __init__(self, ref: Reference, credentials: Credentials | None, plain: bool) -> None:
        self.ref = ref
        self.credentials = credentials
        self.base = f"{'http' if plain else 'https'}://{ref.api_host}/v2/"
        self.authorization = ""  # the header that answered the last challenge, reused

    def config_digest(self) -> str | None:
        """The config digest of the image the tag points at; None when the registry holds
        no such tag (or holds a multi-platform list there). StepFailed when it refuses
        the credentials or cannot be reached."""
        from trek_tasks.http import HttpError

        url = f"{self.base}{self.ref.name}/manifests/{self.ref.tag}"
        try:
            answer = self._get(url, {"Accept": ", ".join(MANIFEST_TYPES + INDEX_TYPES)})
        except HttpError as err:
            if err.status == 404:
                return None
            raise self._failure(err) from None
        manifest = answer.json()
        config = manifest.get("config") if isinstance(manifest, dict) else None
        digest = config.get("digest") if isinstance(config, dict) else None
        return digest if isinstance(digest, str) else None

    def _get(self, url: str, headers: Mapping[str, str]) -> Any:
        from trek_tasks import http

        try:
            return http.request("GET", url, headers=self._with_auth(headers))
        except http.HttpError as err:
            if err.status != 401 or self.authorization:
                raise
            self.authorization = self._answer(err)
            return http.request("GET", url, headers=self._with_auth(headers))

    def _with_auth(self, headers: Mapping[str, str]) -> dict[str, str]:
        auth = {"Authorization": self.authorization} if self.authorization else {}
        return {**headers, **auth}

    def _answer(self, refusal: Any) -> str:
        """The Authorization header meeting the challenge of the 401 ``refusal``."""
        from trek_tasks import http

        challenge = str(refusal.headers.get("WWW-Authenticate") or "")
        scheme, _, params_text = challenge.partition(" ")
        if self.credentials is None and scheme.lower() != "bearer":
            raise refusal  # nothing to answer with (a bearer realm may grant anonymous pulls)
        if scheme.lower() == "basic":
            assert self.credentials is not None
            return self.credentials.basic()
        if scheme.lower() != "bearer":
            raise refusal
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        realm = params.pop("realm", "")
        if not realm:
            raise refusal
        params.setdefault("scope", f"repository:{self.ref.name}:pull")
        from urllib.parse import urlencode

        ask = {"Authorization": self.credentials.basic()} if self.credentials else {}
        token = http.request("GET", f"{realm}?{urlencode(params)}", headers=ask).json()
        found = token.get("token") or token.get("access_token") if isinstance(token, dict) else ""
        if not isinstance(found, str) or not found:
            raise StepFailed(f"the token service {http.shown_url(realm)} gave no token")
        return f"Bearer {found}"

    def _failure(self, err: Any) -> StepFailed:
        """``err`` as one line naming the registry, and for a refusal where the
        credentials came from (never what they are)."""
        if err.status in (401, 403):
            # "HTTP 401: <what the registry said>" (TrekError.__init__ empties err.detail)
            said = err.message.removeprefix(f"{err.method} {err.url}: ")
            registry = self.ref.registry
            if self.credentials is None:
                return StepFailed(
                    f"registry {registry} wants credentials and none are set "
                    f"(docker_username/docker_password or `docker login {registry}`): {said}"
                )
            source = self.credentials.source
            return StepFailed(f"registry {registry} refused the credentials from {source}: {said}")
        return StepFailed(f"registry {self.ref.registry}: {err}")


def _api(client: docker.DockerClient, ref: Reference, config: Config) -> RegistryApi:
    return RegistryApi(
        ref, find_credentials(ref.registry, config), plain_http(client, ref.registry)
    )


def is_pushed(client: docker.DockerClient, script: Script, config: Config) -> bool:
    """Whether the registry holds ``script``'s current image under its tag (doit's
    ``push:<id>`` up-to-date check): its manifest there names the local image's id."""
    from trek_tasks.containers.images import find_image

    image = find_image(client, script, config)
    if image is None:
        return False
    return _api(client, parse_reference(image.tag), config).config_digest() == image.id


def push_script(client: docker.DockerClient, script: Script, config: Config) -> ImagePushed:
    """``push:<id>``: push ``script``'s current image (``build:<id>`` made it) to the
    registry its tag names, with progress events; the event it emits at the end."""
    from trek_tasks.containers.images import find_image, image_tag
    from trek_tasks.progress import PushStarted

    image = find_image(client, script, config)
    if image is None:
        tag = image_tag(script, config)
        raise StepFailed(
            f"no image of the current content under {tag}; run `trek build`", script.id
        )
    emit(PushStarted(script.id, image.tag))
    ref = parse_reference(image.tag)
    api = _api(client, ref, config)
    api.config_digest()  # a refusal or an unreachable registry, said before the daemon tries
    return push_image(client, ref, image.id, api.credentials)


def push_image(
    client: docker.DockerClient, ref: Reference, image_id: str, credentials: Credentials | None
) -> ImagePushed:
    """Have the daemon push ``ref``; one event per layer as it starts and as it lands."""
    import docker.errors

    from trek_tasks.progress import ImagePushed

    started = monotonic()
    auth = credentials.auth_config() if credentials else None
    try:
        chunks = client.api.push(
            ref.repository, tag=ref.tag, stream=True, decode=True, auth_config=auth
        )
        digest = follow_push(ref, chunks)
    except docker.errors.APIError as err:
        raise StepFailed(f"push {ref}: {err.explanation or err}") from None
    except docker.errors.DockerException as err:
        raise StepFailed(f"push {ref}: the Docker daemon failed: {err}") from None
    event = ImagePushed(str(ref), image_id, digest, monotonic() - started)
    emit(event)
    return event


def follow_push(ref: Reference, chunks: Iterable[Mapping[str, Any]]) -> str:
    """Turn the daemon's push stream into progress events; the manifest digest pushed.
    An error chunk is the registry (or daemon) refusing: StepFailed with its reason."""
    from trek_tasks.progress import LayerPushed, LayerPushing

    started: set[str] = set()
    digest = ""
    for chunk in _chunks(chunks):
        if "error" in chunk:
            detail = chunk.get("errorDetail") or {}
            reason = str(detail.get("message") or chunk["error"]).strip()
            raise StepFailed(f"registry {ref.registry} refused the push of {ref}: {reason}")
        status = str(chunk.get("status") or "")
        layer = str(chunk.get("id") or "")
        if "aux" in chunk and isinstance(chunk["aux"], dict):
            digest = str(chunk["aux"].get("Digest") or digest)
        elif layer and status == "Pushing" and layer not in started:
            started.add(layer)
            total = (chunk.get("progressDetail") or {}).get("total")
            emit(LayerPushing(layer, int(total) if total else 0))
        elif layer and status.startswith(_LAYER_DONE):
            emit(LayerPushed(layer, status))
    return digest


def _chunks(chunks: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """The stream, with a connection lost to the daemon mid-push as StepFailed."""
    import requests

    try:
        yield from chunks
    except requests.RequestException as err:
        raise StepFailed(f"the Docker daemon stopped answering during the push: {err}") from None


def push_folder(folder: Path) -> tuple[Script, Image, ImagePushed | None]:
    """``trek pushblcks``: build the blcks script in ``folder`` as ``trek buildblcks``
    does, then push its image unless the registry holds it already (then None)."""
    from trek_tasks.containers.client import connect
    from trek_tasks.containers.images import build_folder
    from trek_tasks.project import find_root_or_none

    script, image = build_folder(folder)
    config = Config.load(find_root_or_none(script.path), script.path)
    client = connect()
    try:
        pushed = None if is_pushed(client, script, config) else push_script(client, script, config)
    finally:
        client.close()
    return script, image, pushed
