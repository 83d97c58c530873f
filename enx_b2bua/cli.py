"""The ``enx-voice`` command line (PRODUCT.md §9)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="enx-voice", description="enx-voice SIP B2BUA")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the voice server")
    serve.add_argument("--config", help="TOML config file (default: the embedded loopback setup)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        # The call server lands with step [4/6]; until then only the libraries exist.
        print("enx-voice: the server is not yet built (step [4/6]); sip_stack is available.")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
