"""``python -m minivrnn.reference_kit check my_module:loss_and_grads ...``: every check at once (command.py)."""
import sys

from .command import main

if __name__ == "__main__":
    sys.exit(main())
