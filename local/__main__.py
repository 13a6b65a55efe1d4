"""``python -m local`` is ``replyflow``."""

from local.cli import main

if __name__ == "__main__":
    main()
