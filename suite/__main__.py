import sys

try:
    from suite.cli import main
except KeyboardInterrupt:  # Ctrl-C while the CLI itself imports: one line, as anywhere else
    print("\ninterrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
