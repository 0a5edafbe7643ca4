"""Command line entry point (placeholder until the foundation's CLI lands)."""
import sys
def main(argv: list[str] | None = None) -> int:
    return 0
if __name__ == "__main__":
    sys.exit(main())
