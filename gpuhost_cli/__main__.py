"""python -m gpuhost_cli: the gpuhost command."""

from gpuhost_cli.cli import main

main()
