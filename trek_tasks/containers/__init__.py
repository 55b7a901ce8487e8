"""Docker images of scripts: the daemon client, the offline wheelhouse, the images and
the OpenFaaS stack file that names them (issue 11). The ``docker`` package is imported
inside functions only, so ``trek --help`` and ``doit list`` never load it."""
