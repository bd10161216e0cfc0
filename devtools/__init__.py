"""Developer tools of the repository (not part of the installed package): the local control plane
that `make demo`, `make cluster-up` and the tests start."""
