"""What the image tests made in the shared Docker daemon, so they remove exactly that.

Their tags live under a registry path of their own (``<registry>/h1-<hex>``); the ids of
the images they built (and of the steps of a build they made fail) are noted as they go.
Removing an id another test or person has tagged since fails in the daemon and is left.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from trek_tasks.containers.images import Image


@dataclass
class Made:
    prefix: str  # <registry>/h1-<hex>: the docker_registry these tests set
    ids: set[str] = field(default_factory=set)

    @classmethod
    def under(cls, registry: str) -> Made:
        return cls(f"{registry}/h1-{secrets.token_hex(4)}")

    def note(self, image: Image) -> Image:
        self.ids.add(image.id)
        return image

    def remove(self, client: Any) -> None:
        import docker

        for image in client.images.list():
            for tag in image.tags:
                if tag.startswith(self.prefix + "/"):
                    self.ids.add(image.id)
                    client.images.remove(tag)
        for image_id in self.ids:
            try:
                if client.images.get(image_id).tags:  # tagged by someone else: the base image
                    continue  # a failing build's FROM step names, or an image reused since
                client.images.remove(image_id)
            except docker.errors.APIError:  # gone, or someone else's now (a parent)
                pass
