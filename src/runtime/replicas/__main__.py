"""`python -m tines.runtime.replicas`: the same as `tines serve --replicas N`."""

import argparse
import sys

from ..server.args import add_serve_arguments
from .app import serve_replicas

parser = argparse.ArgumentParser(prog="python -m tines.runtime.replicas")
add_serve_arguments(parser)
sys.exit(serve_replicas(parser.parse_args()))
