"""A local lab fleet: systemd hosts in containers on this machine, reached over SSH.

``gpuhost lab up`` starts N hosts from the local Debian images (or the simulated Ubuntu ones:
a Debian userland that identifies as Ubuntu), a signed stand-in mirror of Docker's and NVIDIA's
repositories (and of Ubuntu's archive), an SSH key, and an inventory that points at all of it.
The hosts are reached over SSH like real machines. The stand-in mirror carries packages
under the real names that install the real entry points; it is not the vendors' software,
and everything the lab prints says so.
"""

from gpuhost_cli.lab.fleet import Lab, LabError, LabHost

__all__ = ["Lab", "LabError", "LabHost"]
