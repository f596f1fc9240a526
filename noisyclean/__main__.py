"""``python -m noisyclean`` is the ``noisyclean`` command."""

from noisyclean.cli import main

if __name__ == "__main__":
    main()
